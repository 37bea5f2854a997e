#!/usr/bin/env python3
"""Placement against kube-scheduler, in one run (called by e2e/bench-operator --placement).

The same N pods (0.25 vCPU, 1 GiB each) over the same KWOK fleet (e2e/bench-operator
--placement: 3 zones, half 2 vCPU / 8 GiB, half 4 vCPU / 16 GiB):
  kubecs          S ECS services of N/S tasks each with placementStrategy binpack(memory);
                  timed from creating the services until every task pod exists bound to a
                  Node (the operator places and creates each pod bound);
  kube-scheduler  N pods created first, with a schedulerName nobody serves yet; then a
                  second kube-scheduler is started with the bin-packing profile of the
                  Kubernetes docs (NodeResourcesFit scoringStrategy MostAllocated, cpu and
                  memory weight 1; NodeResourcesBalancedAllocation off, since it pulls the other
                  way; percentageOfNodesToScore 100, every node scored as ECS's binpack
                  does; client QPS raised so the API server, not its rate limiter, bounds it);
                  timed from its start until every pod is bound. Pod creation is not in its
                  time (it is in kubecs').
Reports seconds, CPU seconds of the placing process, and how tightly each packed: Nodes used,
and the share of the used Nodes' memory the pods reserve. Asserts no timing.
"""
import argparse, json, os, subprocess, sys, time

from bench_common import Followed, cpu_seconds, kubectl

ap = argparse.ArgumentParser()
ap.add_argument("--tasks", type=int, default=10000)
ap.add_argument("--services", type=int, default=10)
ap.add_argument("--operator-pid", type=int, required=True)
ap.add_argument("--scheduler-bin", required=True)
ap.add_argument("--scheduler-kubeconfig", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--timeout", type=int, default=1800)
a = ap.parse_args()

ECS_NS, SCHED_NS = "bench-ecs", "bench-sched"
SCHEDULER_NAME = "kubecs-bench-most-allocated"
TASK_MEMORY_MIB = 1024


class Pods(Followed):
    """Pods of a namespace: which are bound, and where."""

    def __init__(self, ns):
        self.bound = {}
        super().__init__(f"/api/v1/namespaces/{ns}/pods")

    def reset(self):
        self.bound = {}

    def apply(self, kind, p):
        name = p["metadata"]["name"]
        node = (p.get("spec") or {}).get("nodeName")
        if kind == "DELETED" or p["metadata"].get("deletionTimestamp"):
            self.bound.pop(name, None)
        elif node:
            self.bound[name] = node

    def wait_bound(self, count, timeout):
        return self.wait_until(lambda: len(self.bound) >= count, timeout,
                               lambda: f"{len(self.bound)} of {count} bound")

    def wait_gone(self, timeout):
        return self.wait_until(lambda: not self.bound, timeout, lambda: f"{len(self.bound)} left")


def node_memory_mib():
    out = {}
    for n in json.loads(kubectl("get", "nodes", "-l", "type=bench", "-o", "json"))["items"]:
        mem = n["status"]["allocatable"]["memory"]
        out[n["metadata"]["name"]] = int(mem[:-2]) * 1024 if mem.endswith("Gi") else int(mem[:-2])
    return out


def packing(bound, memory):
    used = set(bound.values())
    fill = len(bound) * TASK_MEMORY_MIB / max(sum(memory[n] for n in used), 1)
    return len(used), fill


N, S = a.tasks, a.services
per_service = N // S
memory = node_memory_mib()
ideal = 0
left = N
for mib in sorted(memory.values(), reverse=True):  # fewest Nodes: the largest first
    if left <= 0:
        break
    left -= mib // TASK_MEMORY_MIB
    ideal += 1
rows = []

# --- kubecs: services with binpack(memory) ------------------------------------------------
kubectl("create", "namespace", ECS_NS)
kubectl("apply", "-f", "-", input=f"""apiVersion: ecs.kubecs.io/v1alpha1
kind: EcsCluster
metadata: {{name: bench, namespace: {ECS_NS}}}
spec:
  instanceSelector: {{matchLabels: {{type: bench}}}}
""")
kubectl("create", "-f", "-", input="".join(f"""---
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {{name: place-{i}, namespace: {ECS_NS}}}
spec:
  requiresCompatibilities: [EC2]
  cpu: "256"
  memory: "{TASK_MEMORY_MIB}"
  containerDefinitions:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
""" for i in range(S)))
ecs = Pods(ECS_NS)
print(f"placement: {N} tasks ({S} services x {per_service}) over {len(memory)} Nodes, then the same "
      f"{N} pods through kube-scheduler (MostAllocated)", file=sys.stderr)
cpu0, t0 = cpu_seconds(a.operator_pid), time.time()
kubectl("create", "-f", "-", input="".join(f"""---
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {{name: place-{i}, namespace: {ECS_NS}}}
spec:
  cluster: bench
  taskDefinition: place-{i}
  desiredCount: {per_service}
  launchType: EC2
  placementStrategy: [{{type: binpack, field: memory}}]
""" for i in range(S)))
ok = ecs.wait_bound(per_service * S, a.timeout)
rows.append(("kubecs binpack(memory)", time.time() - t0, cpu_seconds(a.operator_pid) - cpu0, ok,
             *packing(dict(ecs.bound), memory)))
print(f"  kubecs          {rows[-1][1]:7.1f} s  cpu {rows[-1][2]:6.1f} s  {rows[-1][4]} Nodes used, "
      f"{rows[-1][5]:.1%} of their memory reserved", file=sys.stderr)
# Free the fleet for the peer: the services go, and so do their tasks.
kubectl("delete", "services.ecs.kubecs.io", "--all", "-n", ECS_NS, "--wait=true", "--timeout=900s")
if not ecs.wait_gone(900):
    sys.exit("kubecs' tasks did not go")

# --- kube-scheduler with MostAllocated ----------------------------------------------------------
kubectl("create", "namespace", SCHED_NS)
sched = Pods(SCHED_NS)
batch = 1000
for start in range(0, N, batch):
    kubectl("create", "-f", "-", input="".join(f"""---
apiVersion: v1
kind: Pod
metadata: {{name: place-{i:05d}, namespace: {SCHED_NS}, labels: {{app: place}}}}
spec:
  schedulerName: {SCHEDULER_NAME}
  nodeSelector: {{type: bench}}
  containers:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
      resources: {{requests: {{cpu: 250m, memory: {TASK_MEMORY_MIB}Mi}}}}
""" for i in range(start, min(start + batch, N))))
config = os.path.join(a.work, "most-allocated.yaml")
with open(config, "w") as f:
    f.write(f"""apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {{kubeconfig: "{a.scheduler_kubeconfig}", qps: 5000, burst: 5000}}
leaderElection: {{leaderElect: false}}
percentageOfNodesToScore: 100
profiles:
- schedulerName: {SCHEDULER_NAME}
  plugins:
    score:
      disabled: [{{name: NodeResourcesBalancedAllocation}}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources: [{{name: cpu, weight: 1}}, {{name: memory, weight: 1}}]
""")
log = open(os.path.join(a.work, "most-allocated.log"), "w")
t0 = time.time()
proc = subprocess.Popen([a.scheduler_bin, f"--config={config}", "--bind-address=127.0.0.1", "--secure-port=0",
                         f"--authentication-kubeconfig={a.scheduler_kubeconfig}",
                         f"--authorization-kubeconfig={a.scheduler_kubeconfig}"], stdout=log, stderr=log)
try:
    ok = sched.wait_bound(N, a.timeout)
    secs = time.time() - t0
    cpu = cpu_seconds(proc.pid)
finally:
    proc.terminate()
    proc.wait()
rows.append(("kube-scheduler MostAllocated", secs, cpu, ok, *packing(dict(sched.bound), memory)))
print(f"  kube-scheduler  {rows[-1][1]:7.1f} s  cpu {rows[-1][2]:6.1f} s  {rows[-1][4]} Nodes used, "
      f"{rows[-1][5]:.1%} of their memory reserved", file=sys.stderr)

print()
print(f"| placer ({N} pods over {len(memory)} Nodes) | seconds until all bound | CPU s | Nodes used (fewest possible {ideal}) | memory of used Nodes reserved |")
print("|---|---|---|---|---|")
for name, secs, cpu, ok, used, fill in rows:
    print(f"| {name}{'' if ok else ' (not all bound)'} | {secs:.1f} | {cpu:.1f} | {used} | {fill:.1%} |")
k, s = rows
print(f"| kubecs / kube-scheduler | {k[1] / s[1]:.2f}× | {k[2] / max(s[2], 0.01):.2f}× | {k[4] / s[4]:.2f}× | |")
sys.exit(0 if all(r[3] for r in rows) else 1)
