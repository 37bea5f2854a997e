# On a real node: a service's task holds a container that ignores SIGTERM (stopTimeout 6)
# and one that exits on it. Scaled to 0, ECS sends SIGTERM, waits stopTimeout and kills:
# the polite container finishes at once, the stubborn one is killed (137) about 6 s later,
# measured from the pod's final container statuses.
NS=e2e-real-stop
fresh_namespace $NS
real_cluster $NS real
sed "s|BUSYBOX_IMAGE|$BUSYBOX_IMAGE|; s|NAMESPACE|$NS|" <<'YAML' | kubectl apply -f -
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: stubborn, namespace: NAMESPACE}
spec:
  networkMode: awsvpc
  cpu: "256"
  memory: "128"
  containerDefinitions:
    - name: stubborn
      image: BUSYBOX_IMAGE
      entryPoint: [sh, -c]
      command: ["trap '' TERM; echo ignoring SIGTERM; while :; do sleep 1; done"]
      stopTimeout: 6
    - name: polite
      image: BUSYBOX_IMAGE
      essential: false
      entryPoint: [sh, -c]
      command: ["trap 'echo bye; exit 0' TERM; while :; do sleep 1; done"]
      stopTimeout: 2
YAML
wait_until "stubborn:1 registered" 60 field_eq taskdefinitions stubborn '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: stubborn, namespace: $NS}
spec: {cluster: real, taskDefinition: stubborn, desiredCount: 1}
YAML
wait_until "stubborn:1 COMPLETED" 90 rollout_is $NS stubborn stubborn:1 COMPLETED 1
pod="$(kubectl get pods -n $NS -l ecs.kubecs.io/service=stubborn -o jsonpath='{.items[0].metadata.name}')"
logs_ready() { kubectl logs -n $NS "$pod" -c stubborn | grep -q "ignoring SIGTERM"; }
wait_until "the trap is set" 30 logs_ready
expect_eq "terminationGracePeriodSeconds (the task's largest stopTimeout)" 6 "$(kubectl get pod "$pod" -n $NS -o jsonpath='{.spec.terminationGracePeriodSeconds}')"
# Follow the pod to its end: the last status before it goes holds the real finish times.
ready="$WORK/25-following"; rm -f "$ready"
python3 - "$NS" "$pod" "$ready" >"$WORK/25-final.json" <<'PY' &
import json, subprocess, sys
ns, pod = sys.argv[1], sys.argv[2]
out = subprocess.Popen(["kubectl", "get", "pod", pod, "-n", ns, "--watch", "--output-watch-events", "-o", "json"],
                       stdout=subprocess.PIPE, text=True)
dec, buf, last = json.JSONDecoder(), "", None
for chunk in iter(lambda: out.stdout.read(1), ""):
    buf += chunk
    try:
        ev, end = dec.raw_decode(buf.lstrip())
    except ValueError:
        continue
    buf = ""
    if ev.get("type") == "DELETED":
        break
    last = ev["object"]
    open(sys.argv[3], "w").close()  # the pod as it is now: following from here
out.kill()
json.dump(last, sys.stdout)
PY
follower=$!
wait_until "the follower has the pod" 30 test -e "$ready"
t0=$(date +%s)
kubectl scale services.ecs.kubecs.io stubborn -n $NS --replicas=0
wait "$follower" || fail "following the pod failed"
finished() { python3 -c '
import json, sys, datetime
pod = json.load(open(sys.argv[1]))
for c in pod["status"]["containerStatuses"]:
    if c["name"] == sys.argv[2]:
        t = c["state"]["terminated"]
        at = datetime.datetime.strptime(t["finishedAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        print(int(at.timestamp()), t["exitCode"])' "$WORK/25-final.json" "$1"; }
read -r stubborn_at stubborn_code <<<"$(finished stubborn)"
read -r polite_at polite_code <<<"$(finished polite)"
echo "scaled in at $t0: polite exited $polite_code after $((polite_at - t0))s, stubborn exited $stubborn_code after $((stubborn_at - t0))s"
expect_eq "the stubborn container was killed" 137 "$stubborn_code"
expect_eq "the polite one exited on SIGTERM" 0 "$polite_code"
[ $((polite_at - t0)) -le 3 ] || fail "SIGTERM reached the polite container only after $((polite_at - t0))s"
[ $((stubborn_at - t0)) -ge 5 ] || fail "the stubborn container was killed before its stopTimeout: $((stubborn_at - t0))s"
[ $((stubborn_at - t0)) -le 12 ] || fail "the stubborn container outlived its stopTimeout of 6 s: $((stubborn_at - t0))s"
