#!/usr/bin/env python3
"""Watch-verifies an ECS service's rollout bounds and blue/green traffic switching.

Reads `kubectl get --raw '...?watch=1'` streams of the namespace's pods and core Services
(started here), keeps the current objects, and after every event checks:
  - tasks holding a place (pods not Succeeded/Failed, terminating included) <= --max-tasks
  - healthy tasks (Ready, not terminating) >= --min-healthy, once --min-healthy was reached
  - --never-ready-revision N: no pod of task definition revision N is ever Ready
  - --production NAME: whenever that core Service's selector names a deployment, every pod
    of that deployment that exists is Ready (traffic moves only to healthy green tasks).
Creates --ready once it has listed (events from then on are seen); runs until the file --stop exists; prints the extremes; exits 1 on a violation.
"""
import argparse, json, os, subprocess, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--namespace", required=True)
ap.add_argument("--service", required=True)
ap.add_argument("--max-tasks", type=int)
ap.add_argument("--min-healthy", type=int)
ap.add_argument("--production")
ap.add_argument("--never-ready-revision", help="no task of this task definition revision may ever be Ready")
ap.add_argument("--stop", required=True)
ap.add_argument("--ready", help="file created once the initial lists are in (the watch is armed)")
a = ap.parse_args()

lock = threading.Lock()
pods, svcs = {}, {}
violations = []
seen = {"max_tasks": 0, "min_healthy": None, "armed": False, "switches": 0, "relists": 0}


def ready(p):
    conds = p.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def describe(tasks):
    """name:revision[+ready][+terminating] of each task, for a violation's message."""
    return ", ".join(
        f"{p['metadata']['name']}:{p['metadata'].get('labels', {}).get('ecs.kubecs.io/revision')}"
        f"{'+ready' if ready(p) else ''}{'+terminating' if p['metadata'].get('deletionTimestamp') else ''}"
        for p in tasks)


def check(why):
    ours = [p for p in pods.values() if p["metadata"].get("labels", {}).get("ecs.kubecs.io/service") == a.service]
    holding = [p for p in ours if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
    healthy = [p for p in holding if ready(p) and not p["metadata"].get("deletionTimestamp")]
    seen["max_tasks"] = max(seen["max_tasks"], len(holding))
    if a.max_tasks is not None and len(holding) > a.max_tasks:
        violations.append(f"{len(holding)} tasks > {a.max_tasks} ({why}; tasks: {describe(holding)})")
    if a.min_healthy is not None:
        if len(healthy) >= a.min_healthy:
            seen["armed"] = True
        if seen["armed"]:
            seen["min_healthy"] = len(healthy) if seen["min_healthy"] is None else min(seen["min_healthy"], len(healthy))
            if len(healthy) < a.min_healthy:
                violations.append(f"{len(healthy)} healthy < {a.min_healthy} ({why}; tasks: {describe(holding)})")
    if a.never_ready_revision:
        bad = [p["metadata"]["name"] for p in ours
               if p["metadata"].get("labels", {}).get("ecs.kubecs.io/revision") == a.never_ready_revision and ready(p)]
        if bad:
            violations.append(f"revision {a.never_ready_revision} tasks counted healthy: {bad} ({why})")
    if a.production and a.production in svcs:
        dep = (svcs[a.production].get("spec", {}).get("selector") or {}).get("ecs.kubecs.io/deployment")
        if dep:
            mine = [p for p in ours if p["metadata"]["labels"].get("ecs.kubecs.io/deployment") == dep
                    and not p["metadata"].get("deletionTimestamp")]
            not_ready = [p["metadata"]["name"] for p in mine if not ready(p)]
            if not mine or not_ready:
                violations.append(f"production selects deployment {dep} whose tasks are not all healthy: {not_ready or 'none'} ({why})")


def initial(path, store):
    """Lists first, so checks never see one kind of object without the other."""
    listed = json.loads(subprocess.run(["kubectl", "get", "--raw", path], check=True,
                                       capture_output=True, text=True).stdout)
    for obj in listed.get("items", []):
        store[obj["metadata"]["name"]] = obj
    return listed["metadata"]["resourceVersion"]


def follow(path, store, rv):
    while not os.path.exists(a.stop):
        sep = "&" if "?" in path else "?"
        proc = subprocess.Popen(["kubectl", "get", "--raw", f"{path}{sep}watch=1&resourceVersion={rv}"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            obj = ev.get("object", {})
            if ev.get("type") == "ERROR":
                # 410 Gone (the API server restarted and its watch cache starts later than
                # rv): list again, and check the state that list shows.
                fresh = {}
                try:
                    rv = initial(path, fresh)
                except subprocess.CalledProcessError:
                    break  # still away: the next watch gets the same answer, and lists again
                with lock:
                    store.clear()
                    store.update(fresh)
                    seen["relists"] += 1
                    check(f"relist of {path}")
                break
            name = obj.get("metadata", {}).get("name")
            rv = obj.get("metadata", {}).get("resourceVersion", rv)
            with lock:
                if ev.get("type") == "DELETED":
                    store.pop(name, None)
                elif ev.get("type") in ("ADDED", "MODIFIED"):
                    store[name] = obj
                check(f"{ev.get('type')} {obj.get('kind', '')} {name}")
            if os.path.exists(a.stop):
                break
        proc.kill()
        proc.wait()
        # The API server is away (restarting): do not spin.
        time.sleep(0.2)


ns = a.namespace
pods_path, svcs_path = f"/api/v1/namespaces/{ns}/pods", f"/api/v1/namespaces/{ns}/services"
pods_rv, svcs_rv = initial(pods_path, pods), initial(svcs_path, svcs)
with lock:
    check("initial list")
threading.Thread(target=follow, args=(pods_path, pods, pods_rv), daemon=True).start()
threading.Thread(target=follow, args=(svcs_path, svcs, svcs_rv), daemon=True).start()
if a.ready:
    open(a.ready, "w").close()
while not os.path.exists(a.stop):
    time.sleep(0.2)
with lock:
    print(f"watched: most tasks {seen['max_tasks']}, fewest healthy {seen['min_healthy']}"
          + (f", {seen['relists']} relists" if seen["relists"] else ""))
    for v in violations[:10]:
        print("VIOLATION:", v)
sys.exit(1 if violations else 0)
