#!/usr/bin/env python3
"""The operator at scale against its peer, in one run (called by e2e/bench-operator).

Phases, each timed from the change until the controller's own status says converged:
  kubecs      create N ECS Services x T tasks; roll them to a new revision; (later) roll again
              with the Deployments' pods present; scale in to S
  Deployments create N Deployments x T replicas (kube-controller-manager + kube-scheduler);
              roll them; scale in to S
Both use the same bounds (ECS minimumHealthyPercent 100 / maximumPercent 200 against
maxUnavailable 0 / maxSurge 100%) on the same KWOK nodes, and the same wait for stability: a
kubecs deployment is COMPLETED once its tasks have been healthy for 5 s, a Deployment counts
a pod available once it has been ready for minReadySeconds 5. For each phase: seconds, the CPU
seconds of the process that did the work (the operator; kube-controller-manager plus
kube-scheduler), and API requests per task started or stopped from the API server's
apiserver_request_total (less KWOK's pod and node status writes and leases, which both
sides cause alike). Prints one table; asserts no timing.
"""
import argparse, os, re, subprocess, sys, tempfile, time

from bench_common import Followed, cpu_seconds, kubectl, peak_rss_mib, rss_mib

ap = argparse.ArgumentParser()
ap.add_argument("--services", type=int, default=100)
ap.add_argument("--tasks", type=int, default=10)
ap.add_argument("--scale-in", type=int, default=3)
ap.add_argument("--operator-pid", type=int, required=True)
ap.add_argument("--kcm-pid", type=int, required=True)
ap.add_argument("--scheduler-pid", type=int, required=True)
ap.add_argument("--kubecs-only", action="store_true", help="the operator's phases alone")
ap.add_argument("--nodes", type=int, default=200, help="the bench Nodes (bench-node-0001...)")
ap.add_argument("--foreign-pods", action="store_true",
                help="with --kubecs-only: roll again beside N x T bare pods bound round-robin to the "
                     "Nodes (the Deployments' pods without their 30 minutes of placing them)")
ap.add_argument("--timeout", type=int, default=1800, help="per phase, seconds")
a = ap.parse_args()

ECS_NS, DEP_NS = "bench-ecs", "bench-deploy"


# What both sides cause alike, or what is not the controllers' own conversation.
EXCLUDED = [
    ("pods", "status"),       # KWOK's pod lifecycle
    ("nodes", "status"),      # KWOK's heartbeats
    ("leases", ""),           # node and leader leases
]


def api_requests():
    """Mutating and reading requests the API server has served, by (verb, resource, subresource)."""
    text = kubectl("get", "--raw", "/metrics")
    out = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        if any(key[1] == r and (s == "" and r == "leases" or key[2] == s) for r, s in EXCLUDED):
            continue
        out[key] = out.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return out


def delta(before, after):
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {k: v for k, v in d.items() if v > 0}


class Converged(Followed):
    """Follows a list+watch of PATH and waits until PREDICATE holds for COUNT objects."""

    def __init__(self, path):
        self.objs = {}
        super().__init__(path)

    def reset(self):
        self.objs = {}

    def apply(self, kind, o):
        if kind == "DELETED":
            self.objs.pop(o["metadata"]["name"], None)
        else:
            self.objs[o["metadata"]["name"]] = o

    def wait(self, predicate, count, timeout):
        done = lambda: sum(1 for o in self.objs.values() if predicate(o))
        return self.wait_until(lambda: done() >= count, timeout, lambda: f"{done()} of {count} converged")


def ecs_done(rev, count):
    def ok(s):
        st = s.get("status") or {}
        deps = st.get("deployments") or []
        name = s["metadata"]["name"]
        return (len(deps) == 1 and deps[0].get("taskDefinition") == f"{name}:{rev}"
                and deps[0].get("rolloutState") == "COMPLETED"
                and s["spec"].get("desiredCount") == count
                and st.get("runningCount") == count and st.get("pendingCount", 0) == 0)
    return ok


def deploy_done(count, image_tag):
    def ok(d):
        st = d.get("status") or {}
        img = d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"]
        return (img == image_tag and st.get("observedGeneration", 0) >= d["metadata"]["generation"]
                and d["spec"]["replicas"] == count
                and st.get("replicas") == count and st.get("updatedReplicas") == count
                and st.get("readyReplicas") == count and st.get("availableReplicas") == count)
    return ok


def taskdef(i, version):
    return f"""---
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {{name: app-{i}, namespace: {ECS_NS}}}
spec:
  networkMode: awsvpc
  requiresCompatibilities: [EC2]
  cpu: "256"
  memory: "512"
  containerDefinitions:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
      portMappings: [{{containerPort: 80}}]
      environment: [{{name: VERSION, value: "{version}"}}]
"""


def service(i, count):
    return f"""---
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {{name: app-{i}, namespace: {ECS_NS}}}
spec:
  cluster: bench
  taskDefinition: app-{i}
  desiredCount: {count}
  launchType: EC2
  deploymentConfiguration: {{minimumHealthyPercent: 100, maximumPercent: 200}}
"""


def deployment(i, count, version):
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{i}, namespace: {DEP_NS}}}
spec:
  replicas: {count}
  minReadySeconds: 5
  selector: {{matchLabels: {{app: app-{i}}}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 0, maxSurge: "100%"}}}}
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      nodeSelector: {{type: bench}}
      containers:
        - name: app
          image: public.ecr.aws/nginx/nginx:1.27
          ports: [{{containerPort: 80}}]
          env: [{{name: VERSION, value: "{version}"}}]
          resources: {{requests: {{cpu: 256m, memory: 512Mi}}, limits: {{cpu: 256m, memory: 512Mi}}}}
"""


def foreign_pod(i, nodes):
    """One of the Deployments' pods as kube-scheduler spreads them, bound by name."""
    return f"""---
apiVersion: v1
kind: Pod
metadata: {{name: foreign-{i}, namespace: {DEP_NS}, labels: {{app: foreign-{i // 10}}}}}
spec:
  nodeName: bench-node-{i % nodes + 1:04d}
  containers:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
      ports: [{{containerPort: 80}}]
      resources: {{requests: {{cpu: 256m, memory: 512Mi}}, limits: {{cpu: 256m, memory: 512Mi}}}}
"""


rows = []


def row(side, name):
    return next(r for r in rows if r["side"] == side and r["phase"] == name)


CLIENTS = 8


def kubectl_all(verb, docs):
    """`kubectl VERB` of DOCS from CLIENTS kubectl processes at once, each every CLIENTS-th
    object: a deploy tool's parallel apply, so that a phase times the controllers and not one
    client's round trips (one kubectl applying 1,000 objects one after the other took half
    of a roll's time)."""
    docs = list(docs)
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(min(CLIENTS, len(docs))):
            path = os.path.join(tmp, f"{k}.yaml")
            with open(path, "w") as f:
                f.write("".join(docs[k::CLIENTS]))
            procs.append(subprocess.Popen(["kubectl", verb, "-f", path], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True))
        errors = [p.communicate()[1] for p in procs]
    if any(p.returncode != 0 for p in procs):
        sys.exit(f"kubectl {verb}: {' '.join(e.strip() for e in errors)[:2000]}")


def quiet_pods(ns):
    """(pods in NS, how many of them are not Running or are being deleted)."""
    out = kubectl("get", "pods", "-n", ns, "--no-headers",
                  "-o", "custom-columns=P:.status.phase,D:.metadata.deletionTimestamp")
    lines = [l.split() for l in out.splitlines() if l.strip()]
    return len(lines), sum(1 for l in lines if l != ["Running", "<none>"])


def settle(expected):
    """Waits until each namespace holds exactly its expected pods, all Running and none being
    deleted: a phase starts from a quiet cluster, not in the tail of the one before (KWOK
    still deleting the old pods of a roll that its controller already counts as done)."""
    t0 = time.time()
    while time.time() - t0 < 600:
        counts = {ns: quiet_pods(ns) for ns in expected}
        if all(counts[ns] == (n, 0) for ns, n in expected.items()):
            if time.time() - t0 > 1:
                print(f"  settled in {time.time() - t0:.0f} s", file=sys.stderr)
            return
        time.sleep(5)
    print(f"  not settled after 600 s: {counts}", file=sys.stderr)


def phase(name, side, change, wait, tasks_changed):
    pids = [a.operator_pid] if side == "kubecs" else [a.kcm_pid, a.scheduler_pid]
    cpu0 = sum(cpu_seconds(p) for p in pids)
    req0 = api_requests()
    t0 = time.time()
    change()
    applied = time.time() - t0
    ok = wait()
    secs = time.time() - t0
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    req = delta(req0, api_requests())
    total = sum(req.values())
    rows.append({"phase": name, "side": side, "seconds": secs, "converged": ok, "cpu": cpu,
                 "requests": total, "per_task": total / max(tasks_changed, 1), "detail": req})
    top = ", ".join(f"{v:.0f} {k[0]} {k[1]}{'/' + k[2] if k[2] else ''}" for k, v in
                    sorted(req.items(), key=lambda kv: -kv[1])[:6])
    rss = f"  operator RSS {rss_mib(a.operator_pid):.0f} MiB, peak {peak_rss_mib(a.operator_pid):.0f}"
    print(f"  {side:11} {name:34} {secs:7.1f} s  (kubectl {applied:.0f} s)  cpu {cpu:6.1f} s  {total:7.0f} requests "
          f"({total / max(tasks_changed, 1):.2f}/task: {top}){rss}{'' if ok else '  NOT CONVERGED'}", file=sys.stderr)
    return secs


N, T, S = a.services, a.tasks, a.scale_in
for ns in (ECS_NS, DEP_NS):
    kubectl("create", "namespace", ns)
kubectl("apply", "-f", "-", input=f"""apiVersion: ecs.kubecs.io/v1alpha1
kind: EcsCluster
metadata: {{name: bench, namespace: {ECS_NS}}}
spec:
  instanceSelector: {{matchLabels: {{type: bench}}}}
""")
ecs = Converged(f"/apis/ecs.kubecs.io/v1alpha1/namespaces/{ECS_NS}/services")
deps = Converged(f"/apis/apps/v1/namespaces/{DEP_NS}/deployments")
print(f"operator at scale: {N} services x {T} tasks, then {N} Deployments x {T} replicas", file=sys.stderr)

# kubecs: create, then roll alone.
kubectl_all("create", (taskdef(i, "1") for i in range(N)))
phase("create", "kubecs", lambda: kubectl_all("create", (service(i, T) for i in range(N))),
      lambda: ecs.wait(ecs_done(1, T), N, a.timeout), N * T)
settle({ECS_NS: N * T})
phase("roll to a new revision (alone)", "kubecs",
      lambda: kubectl_all("apply", (taskdef(i, "2") for i in range(N))),
      lambda: ecs.wait(ecs_done(2, T), N, a.timeout), 2 * N * T)
if a.kubecs_only:
    rev = 2
    if a.foreign_pods:
        bare = Converged(f"/api/v1/namespaces/{DEP_NS}/pods")
        t0 = time.time()
        kubectl_all("create", (foreign_pod(i, a.nodes) for i in range(N * T)))
        running = lambda p: (p.get("status") or {}).get("phase") == "Running"
        if not bare.wait(running, N * T, a.timeout):
            sys.exit("the foreign pods did not all start")
        print(f"  {N * T} foreign pods running after {time.time() - t0:.1f} s", file=sys.stderr)
        rev = 3
        settle({ECS_NS: N * T, DEP_NS: N * T})
        phase("roll with the foreign pods", "kubecs",
              lambda: kubectl_all("apply", (taskdef(i, "3") for i in range(N))),
              lambda: ecs.wait(ecs_done(3, T), N, a.timeout), 2 * N * T)
    settle({ECS_NS: N * T, **({DEP_NS: N * T} if a.foreign_pods else {})})
    phase(f"scale in to {S}", "kubecs",
          lambda: kubectl_all("apply", (service(i, S) for i in range(N))),
          lambda: ecs.wait(ecs_done(rev, S), N, a.timeout), N * (T - S))
    if a.foreign_pods:
        alone, crowded = row("kubecs", "roll to a new revision (alone)"), row("kubecs", "roll with the foreign pods")
        print(f"crowded roll / roll alone: {crowded['seconds'] / alone['seconds']:.2f}x in time, "
              f"{crowded['cpu'] / max(alone['cpu'], 0.01):.2f}x in CPU")
    print(f"peak RSS: operator {peak_rss_mib(a.operator_pid):.0f} MiB")
    sys.exit(0 if all(r["converged"] for r in rows) else 1)
# Deployments: create and roll, with kubecs' tasks present.
settle({ECS_NS: N * T})
phase("create", "Deployments", lambda: kubectl_all("create", (deployment(i, T, "1") for i in range(N))),
      lambda: deps.wait(deploy_done(T, "1"), N, a.timeout), N * T)
settle({ECS_NS: N * T, DEP_NS: N * T})
phase("roll to a new revision", "Deployments",
      lambda: kubectl_all("apply", (deployment(i, T, "2") for i in range(N))),
      lambda: deps.wait(deploy_done(T, "2"), N, a.timeout), 2 * N * T)
# kubecs again, now with the Deployments' pods on the same nodes.
settle({ECS_NS: N * T, DEP_NS: N * T})
phase("roll with the Deployments' pods", "kubecs",
      lambda: kubectl_all("apply", (taskdef(i, "3") for i in range(N))),
      lambda: ecs.wait(ecs_done(3, T), N, a.timeout), 2 * N * T)
# Scale in, each side.
settle({ECS_NS: N * T, DEP_NS: N * T})
phase(f"scale in to {S}", "kubecs",
      lambda: kubectl_all("apply", (service(i, S) for i in range(N))),
      lambda: ecs.wait(ecs_done(3, S), N, a.timeout), N * (T - S))
settle({ECS_NS: N * S, DEP_NS: N * T})
phase(f"scale in to {S}", "Deployments",
      lambda: kubectl_all("apply", (deployment(i, S, "2") for i in range(N))),
      lambda: deps.wait(deploy_done(S, "2"), N, a.timeout), N * (T - S))

op_rss, kcm_rss = peak_rss_mib(a.operator_pid), peak_rss_mib(a.kcm_pid)


print()
print(f"| phase ({N} services x {T} tasks) | kubecs s | Deployments s | kubecs / Deployments | kubecs CPU s | kcm + scheduler CPU s | kubecs API requests per task | Deployments API requests per task |")
print("|---|---|---|---|---|---|---|---|")
for name, k, d in [("create", "create", "create"),
                   ("roll to a new revision", "roll to a new revision (alone)", "roll to a new revision"),
                   (f"scale in to {S}", f"scale in to {S}", f"scale in to {S}")]:
    rk, rd = row("kubecs", k), row("Deployments", d)
    flag = "" if rk["converged"] and rd["converged"] else " (not converged)"
    print(f"| {name}{flag} | {rk['seconds']:.1f} | {rd['seconds']:.1f} | {rk['seconds'] / rd['seconds']:.2f}× | "
          f"{rk['cpu']:.1f} | {rd['cpu']:.1f} | {rk['per_task']:.2f} | {rd['per_task']:.2f} |")
alone, crowded = row("kubecs", "roll to a new revision (alone)"), row("kubecs", "roll with the Deployments' pods")
print()
print(f"| kubecs rollout | seconds | CPU s | API requests per task |")
print("|---|---|---|---|")
print(f"| alone ({N * T} tasks in the cluster) | {alone['seconds']:.1f} | {alone['cpu']:.1f} | {alone['per_task']:.2f} |")
print(f"| with {N * T} Deployment pods on the same nodes | {crowded['seconds']:.1f} | {crowded['cpu']:.1f} | {crowded['per_task']:.2f} |")
print(f"| ratio (goal ≤ 1.5×) | {crowded['seconds'] / alone['seconds']:.2f}× | {crowded['cpu'] / max(alone['cpu'], 0.01):.2f}× | |")
print()
print(f"peak RSS: operator {op_rss:.0f} MiB, kube-controller-manager {kcm_rss:.0f} MiB")
sys.exit(0 if all(r["converged"] for r in rows) else 1)
