"""What the benchmark scripts share: kubectl, a process's CPU seconds and RSS, and a
list+watch of a collection that a waiter can follow."""
import json, os, subprocess, sys, threading, time

CLK = os.sysconf("SC_CLK_TCK")


def kubectl(*args, input=None):
    r = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"kubectl {' '.join(args[:3])}: {r.stderr.strip()[:2000]}")
    return r.stdout


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def _status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_rss_mib(pid):
    return _status_kib(pid, "VmHWM") / 1024


def rss_mib(pid):
    return _status_kib(pid, "VmRSS") / 1024


class Followed:
    """A list+watch of PATH, each object given to `apply(kind, obj)` under `lock`, which a
    waiter holds to read what has been applied and waits on for the next change."""

    def __init__(self, path):
        self.path, self.lock = path, threading.Condition()
        self._list()
        threading.Thread(target=self._follow, daemon=True).start()

    def apply(self, kind, obj):
        raise NotImplementedError

    def reset(self):
        """Forgets every object: a relist follows."""
        raise NotImplementedError

    def _list(self):
        listed = json.loads(kubectl("get", "--raw", self.path))
        with self.lock:
            self.reset()
            for o in listed["items"]:
                self.apply("ADDED", o)
            self.rv = listed["metadata"]["resourceVersion"]
            self.lock.notify_all()

    def _follow(self):
        while True:
            if self.rv is None:  # the watch expired (410 Gone): list again
                self._list()
            sep = "&" if "?" in self.path else "?"
            p = subprocess.Popen(["kubectl", "get", "--raw", f"{self.path}{sep}watch=1&resourceVersion={self.rv}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1 << 20)
            for line in p.stdout:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("type") == "ERROR":
                    self.rv = None
                    break
                o = ev.get("object", {})
                with self.lock:
                    self.rv = o["metadata"].get("resourceVersion", self.rv)
                    self.apply(ev["type"], o)
                    self.lock.notify_all()
            p.kill()
            p.wait()
            time.sleep(0.5)

    def wait_until(self, done, timeout, what):
        """Waits until `done()` (called under the lock) is true; False on time-out."""
        deadline = time.time() + timeout
        with self.lock:
            while not done():
                left = deadline - time.time()
                if left <= 0:
                    print(f"  timed out: {what()}", file=sys.stderr)
                    return False
                self.lock.wait(min(left, 1.0))
            return True
