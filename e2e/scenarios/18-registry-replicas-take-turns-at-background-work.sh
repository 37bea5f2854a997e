# A platform team runs the registry with two replicas on one S3 bucket (the chart's
# registry.replicas: 2). Both serve pushes and pulls; only the holder of the kubecs-registry
# Lease writes Repository status, applies lifecycle policies and collects garbage, so two
# replicas never expire or collect at once. A push through the other replica still shows in
# the Repository's status at once, and when the leader dies the other replica takes the
# background work over without a restart.
#
# Both replicas run here as the chart's kubecs-registry ServiceAccount (its RBAC, the lease
# Role included, is what is tested), on 127.0.0.1, over moto.
NS=e2e-registry-replicas
fresh_namespace $NS
PATH="$("$E2E_DIR/registry-clients"):$PATH"
tmp="$(mktemp -d)"
export DOCKER_CONFIG="$tmp/docker"
declare -A pid port
moto_pid=""
# These replicas are the only registry while the scenario runs (they take the Lease).
"$E2E_DIR/cluster" registry-stop
trap 'for p in "${pid[@]}" $moto_pid; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; release_finalizers "$NS"
  cp "$tmp"/replica-*.log "$WORK/" 2>/dev/null; rm -rf "$tmp"; "$E2E_DIR/cluster" registry-start' EXIT
start_moto "$tmp/moto.log"
moto_pid=$MOTO_PID
sa_kubeconfig kubecs-system kubecs-registry "$tmp/registry.kubeconfig" 1h
"$KUBECS_BIN" registry-token --token-key-file "$tmp/token.key" --user kubecs-e2e-admin > "$tmp/token"

replica() { # NAME: start (or restart) the replica NAME on its port
  port[$1]="${port[$1]:-$(free_port)}"
  HOSTNAME="replica-$1" KUBECONFIG="$tmp/registry.kubeconfig" RUST_LOG=info,kube_client=warn,kube_runtime=warn \
    "$KUBECS_BIN" registry --kubernetes --listen "127.0.0.1:${port[$1]}" --public-host "127.0.0.1:${port[$1]}" \
    --storage "s3://kubecs-registry/$NS" --s3-endpoint "$MOTO_ENDPOINT" --s3-allow-http \
    --token-key-file "$tmp/token.key" --lease-seconds 3 \
    --gc-interval-seconds 2 --gc-grace-seconds 1 --lifecycle-interval-seconds 2 >>"$tmp/replica-$1.log" 2>&1 &
  pid[$1]=$!
  wait_until "replica $1 serves" 60 curl -sf "http://127.0.0.1:${port[$1]}/ready"
  crane auth login "127.0.0.1:${port[$1]}" -u AWS -p "$(cat "$tmp/token")" >/dev/null
}
holder() { kubectl -n kubecs-system get lease kubecs-registry -o jsonpath='{.spec.holderIdentity}'; }
leads() { local h; h="$(holder)"; [[ "$h" == "replica-$1-${pid[$1]}" ]] || { echo "the lease holder is '$h'"; return 1; }; }
push() { # REPLICA REPOSITORY TAG: a small image of its own
  mkdir -p "$tmp/$3" && echo "$2:$3" > "$tmp/$3/id" && tar -C "$tmp/$3" -cf "$tmp/$3.tar" id
  crane append --insecure -f "$tmp/$3.tar" -t "127.0.0.1:${port[$1]}/$NS/$2:$3" >/dev/null
}
present() { curl -sf -o /dev/null -u "AWS:$(cat "$tmp/token")" "http://127.0.0.1:${port[$1]}/v2/$NS/$2/manifests/$3"; }
gone() { ! present "$@"; }

kubectl apply -f - <<YAML
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: plain, namespace: $NS}
spec: {repositoryName: $NS/plain, force: true}
---
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: trim, namespace: $NS}
spec:
  repositoryName: $NS/trim
  force: true
  lifecyclePolicy:
    rules:
      - {rulePriority: 1, description: keep the newest, selection: {tagStatus: any, countType: imageCountMoreThan, countNumber: 1}, action: {type: expire}}
YAML
replica a
wait_until "replica a leads" 60 leads a
replica b
# (Its lease task logs once it runs, which may be just after the listener answers.)
wait_until "replica b is a standby" 30 grep -F "standby: waiting for the kubecs-registry lease" "$tmp/replica-b.log"

# A push through the standby: the leader refreshes the status at once (not at its 5-minute
# refresh), told through the Repository object.
wait_until "pushing plain:v1 through b" 30 push b plain v1
wait_until "plain's status counts the image pushed through b" 20 field_eq repository plain '{.status.imageCount}' 1 $NS
# Lifecycle: the leader expires the older image; the standby serves the result.
push b trim t1
push b trim t2
wait_until "the leader expires trim:t1" 30 gone b trim t1
present b trim t2 || fail "trim:t2 should stay"
wait_until "the leader logs the expiry" 10 grep -F "expired image" "$tmp/replica-a.log"
wait_until "the leader collects garbage" 30 grep -F "registry garbage collection" "$tmp/replica-a.log"
for what in "expired image" "registry garbage collection" "leading: holding"; do
  ! grep -F "$what" "$tmp/replica-b.log" || fail "the standby ran background work ($what)"
done

# The leader dies: the standby takes over without a restart, and serves throughout.
kill -9 "${pid[a]}"
wait_until "replica b leads" 30 leads b
push b trim t3
wait_until "b, now leading, expires trim:t2" 30 gone b trim t2
wait_until "b collects garbage" 30 grep -F "registry garbage collection" "$tmp/replica-b.log"
# a comes back as the standby; its push reaches b's status through the Repository object.
replica a
leads b
wait_until "pushing plain:v2 through a" 30 push a plain v2
wait_until "plain's status counts the image pushed through a" 20 field_eq repository plain '{.status.imageCount}' 2 $NS
# The restarted a, a standby, leaves the expiry of trim:t3 to b.
since="$(wc -l < "$tmp/replica-a.log")"
push a trim t4
wait_until "b expires trim:t3" 30 gone a trim t3
! tail -n +"$((since + 1))" "$tmp/replica-a.log" | grep -F "expired image" || fail "the restarted standby expired images"
kubectl delete repository plain trim -n $NS --timeout=60s
