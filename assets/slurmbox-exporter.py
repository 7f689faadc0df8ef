#!/usr/bin/env python3
"""slurmbox-exporter: the cluster's numbers in the Prometheus text format.

It runs as the slurm account beside slurmctld, in the controller's container, and
answers GET /metrics on --port. Each scrape asks Slurm once, side by side: `squeue`
(one line a job: its --json takes a second for 1,000 jobs, this text milliseconds),
`scontrol show nodes --json`, `sdiag --json`, `sacctmgr ping`.

Slurm 26.05 serves its own metrics (MetricsType=metrics/openmetrics: /metrics/jobs,
/metrics/nodes, /metrics/partitions, /metrics/scheduler, /metrics/jobs-users-accts on
slurmctld's port). Slurm 24.11 has none: there this exporter builds the same families,
under the same names, labels and units (memory in MB, as Slurm's own "_bytes" families
hold), so a dashboard does not depend on the release. (squeue shows a job by one state:
a completing job counts as completing, not also as what it ends as.) On both it adds
what Slurm lacks, under `slurmbox_`:
  slurmbox_slurmctld_up                  whether slurmctld answered this scrape
  slurmbox_slurmdbd_up                   whether slurmdbd answers (with accounting)
  slurmbox_jobs_pending_reason{reason}   pending jobs by Slurm's reason
"""

import argparse
import json
import re
import subprocess
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLURM_CONF = "/etc/slurm/slurm.conf"

# The jobs, one line each.
SQUEUE = ["squeue", "-h", "-a", "-t", "all", "-O",
          "JobID:|,State:|,Reason:|,Partition:|,UserName:|,Account:|,tres-alloc:|,NodeList:|"]
# squeue shows a job by its base state or by a flag in its place ("COMPLETING"); the
# base state some flags imply.
BASE_OF = {"CONFIGURING": "RUNNING", "POWER_UP_NODE": "RUNNING", "REQUEUED": "PENDING",
           "REQUEUE_HOLD": "PENDING", "REQUEUE_FED": "PENDING"}
# What holds resources.
HOLDING = {"RUNNING", "SUSPENDED", "COMPLETING", "SIGNALING", "STAGE_OUT"}

# Job counters: 26.05's suffix, its help, and which jobs count. A job is (base state,
# flags, hold).
FINISHED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
            "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"}
JOB_STATES = [
    ("bootfail", "BootFail", lambda s, f, h: s == "BOOT_FAIL"),
    ("cancelled", "Cancelled", lambda s, f, h: s == "CANCELLED"),
    ("completed", "Completed", lambda s, f, h: s == "COMPLETED"),
    ("completing", "Completing", lambda s, f, h: "COMPLETING" in f),
    ("configuring", "Configuring", lambda s, f, h: "CONFIGURING" in f),
    ("deadline", "Deadline", lambda s, f, h: s == "DEADLINE"),
    ("expediting", "Expediting", lambda s, f, h: "EXPEDITING" in f),
    ("failed", "Failed", lambda s, f, h: s == "FAILED"),
    ("fed_requeued", "federation requeued", lambda s, f, h: "REQUEUE_FED" in f),
    ("finished", "a finished", lambda s, f, h: s in FINISHED),
    ("hold", "Hold", lambda s, f, h: h),
    ("node_failed", "Node Failed", lambda s, f, h: s == "NODE_FAIL"),
    ("outofmemory", "Out of Memory", lambda s, f, h: s == "OUT_OF_MEMORY"),
    ("pending", "Pending", lambda s, f, h: s == "PENDING"),
    ("powerup_node", "PowerUp Node", lambda s, f, h: "POWER_UP_NODE" in f),
    ("preempted", "Preempted", lambda s, f, h: s == "PREEMPTED"),
    ("requeued", "Requeued", lambda s, f, h: "REQUEUED" in f),
    ("resizing", "Resizing", lambda s, f, h: "RESIZING" in f),
    ("revoked", "Revoked", lambda s, f, h: "REVOKED" in f),
    ("running", "Running", lambda s, f, h: s == "RUNNING"),
    ("signaling", "Signaling", lambda s, f, h: "SIGNALING" in f),
    ("stageout", "StageOut", lambda s, f, h: "STAGE_OUT" in f),
    ("started", "a started", lambda s, f, h: s != "PENDING"),
    ("suspended", "Suspended", lambda s, f, h: s == "SUSPENDED"),
    ("timeout", "Timeout", lambda s, f, h: s == "TIMEOUT"),
]
# What jobs hold: 26.05's suffix, its help.
JOB_ALLOC = [("cpus_alloc", "Cpus allocated by jobs"), ("gpus_alloc", "GPUs allocated by jobs"),
             ("memory_alloc", "memory (MB) allocated by jobs"),
             ("nodes_alloc", "nodes allocated by jobs")]

# Node states: the suffix of slurm_nodes_*, of slurm_partition_nodes_*, and which
# nodes count (base state, flags). The drained/draining pair depends on running jobs.
BUSY = {"ALLOCATED", "MIXED"}
NODE_STATES = [
    ("alloc", "alloc", lambda s, f: s == "ALLOCATED"),
    ("blocked", "blocked", lambda s, f: s == "BLOCKED" or "BLOCKED" in f),
    ("completing", "cg", lambda s, f: "COMPLETING" in f),
    ("cloud", "cloud", lambda s, f: "CLOUD" in f),
    ("down", "down", lambda s, f: s == "DOWN"),
    ("drain", "drain", lambda s, f: "DRAIN" in f),
    ("drained", "drained", lambda s, f: "DRAIN" in f and s not in BUSY),
    ("draining", "draining", lambda s, f: "DRAIN" in f and s in BUSY),
    ("dyn_future", "dyn_future", lambda s, f: "DYNAMIC_FUTURE" in f),
    ("dyn_normal", "dyn_normal", lambda s, f: "DYNAMIC_NORM" in f),
    ("external", "external", lambda s, f: "EXTERNAL" in f),
    ("fail", "fail", lambda s, f: "FAIL" in f),
    ("future", "future", lambda s, f: s == "FUTURE"),
    ("idle", "idle", lambda s, f: s == "IDLE"),
    ("invalid_reg", "invalid_reg", lambda s, f: "INVALID_REG" in f),
    ("maint", "maint", lambda s, f: "MAINTENANCE" in f),
    ("mixed", "mixed", lambda s, f: s == "MIXED"),
    ("noresp", "no_resp", lambda s, f: "NOT_RESPONDING" in f),
    ("planned", "planned", lambda s, f: "PLANNED" in f),
    ("power_down", "power_down", lambda s, f: "POWER_DOWN" in f),
    ("power_up", "power_up", lambda s, f: "POWER_UP" in f),
    ("powered_down", "powered_down", lambda s, f: "POWERED_DOWN" in f),
    ("powering_up", "powering_up", lambda s, f: "POWERING_UP" in f),
    (None, "powering_down", lambda s, f: "POWERING_DOWN" in f),  # partitions only
    ("reboot_issued", "reboot_issued", lambda s, f: "REBOOT_ISSUED" in f),
    ("reboot_req", "reboot_requested", lambda s, f: "REBOOT_REQUESTED" in f),
    ("resv", "resv", lambda s, f: "RESERVED" in f),
    ("unknown", "unknown", lambda s, f: s == "UNKNOWN"),
]
# Per node: slurm_node_<suffix>, its help, and its partitions' slurm_partition_<name>.
NODE_FIGURES = [
    ("cpus", "Total number of cpus in the node", "cpus"),
    ("cpus_alloc", "Allocated cpus in the node", "nodes_cpus_alloc"),
    ("cpus_effective", "CPUs allocatable to jobs", "nodes_cpus_efctv"),
    ("cpus_idle", "Idle cpus in the node", "nodes_cpus_idle"),
    ("gpus", "Total number of GPUs in the node", "gpus"),
    ("gpus_alloc", "GPUs allocated by jobs on the node", None),
    ("memory_alloc_bytes", "Memory (MB) allocated to jobs in the node", "nodes_mem_alloc"),
    ("memory_effective_bytes", "Memory (MB) allocatable to jobs", "nodes_mem_avail"),
    ("memory_free_bytes", "Free memory (MB) of the node", "nodes_mem_free"),
    ("memory_bytes", "Total memory (MB) of the node", "nodes_mem_tot"),
]
# slurm_<name> from sdiag's statistics (26.05's /metrics/scheduler, key by key).
SCHEDULER = {
    "agent_cnt": "agent_count", "agent_queue_size": "agent_queue_size",
    "agent_thread_cnt": "agent_thread_count", "bf_depth_mean": "bf_depth_mean",
    "bf_mean_cycle": "bf_cycle_mean", "bf_mean_table_sz": "bf_table_size_mean",
    "bf_queue_len_mean": "bf_queue_len_mean", "bf_try_depth_mean": "bf_depth_mean_try",
    "backfilled_het_jobs": "bf_backfilled_het_jobs", "backfilled_jobs": "bf_backfilled_jobs",
    "bf_active": "bf_active", "bf_cycle_cnt": "bf_cycle_counter", "bf_cycle_last": "bf_cycle_last",
    "bf_cycle_max": "bf_cycle_max", "bf_cycle_tot": "bf_cycle_sum", "bf_depth_tot": "bf_depth_sum",
    "bf_depth_try_tot": "bf_depth_try_sum", "bf_last_depth": "bf_last_depth",
    "bf_last_depth_try": "bf_last_depth_try", "bf_queue_len": "bf_queue_len",
    "bf_queue_len_tot": "bf_queue_len_sum", "bf_table_size": "bf_table_size",
    "bf_table_size_tot": "bf_table_size_sum", "bf_when_last_cycle": "bf_when_last_cycle",
    "sdiag_jobs_canceled": "jobs_canceled", "sdiag_jobs_completed": "jobs_completed",
    "sdiag_jobs_failed": "jobs_failed", "sdiag_jobs_pending": "jobs_pending",
    "sdiag_jobs_running": "jobs_running", "sdiag_jobs_started": "jobs_started",
    "sdiag_jobs_submitted": "jobs_submitted", "sdiag_job_states_ts": "job_states_ts",
    "last_backfilled_jobs": "bf_last_backfilled_jobs", "sdiag_latency": "gettimeofday_latency",
    "schedule_cycle_cnt": "schedule_cycle_total", "schedule_cycle_depth": "schedule_cycle_depth",
    "schedule_cycle_last": "schedule_cycle_last", "schedule_cycle_max": "schedule_cycle_max",
    "schedule_cycle_tot": "schedule_cycle_sum", "schedule_queue_len": "schedule_queue_length",
    "sched_exit_end": "schedule_exit.end_job_queue",
    "sched_exit_max_depth": "schedule_exit.default_queue_depth",
    "sched_exit_max_job_start": "schedule_exit.max_job_start",
    "sched_exit_lic": "schedule_exit.licenses", "sched_exit_rpc_cnt": "schedule_exit.max_rpc_cnt",
    "sched_exit_timeout": "schedule_exit.max_sched_time", "bf_exit_end": "bf_exit.end_job_queue",
    "bf_exit_max_job_start": "bf_exit.bf_max_job_start",
    "bf_exit_max_job_test": "bf_exit.bf_max_job_test",
    "bf_exit_state_changed": "bf_exit.state_changed",
    "bf_exit_table_limit": "bf_exit.bf_node_space_size", "bf_exit_timeout": "bf_exit.bf_max_time",
    "sched_mean_cycle": "schedule_cycle_mean", "sched_mean_depth_cycle": "schedule_cycle_mean_depth",
    "server_thread_cnt": "server_thread_count", "slurmdbd_queue_size": "dbd_agent_queue_size",
    "last_proc_req_start": "req_time_start", "sched_stats_timestamp": "req_time",
}


def num(value):
    """A number from Slurm's JSON: plain, a bool, or {"set", "infinite", "number"}."""
    if isinstance(value, dict):
        return value.get("number", 0) if value.get("set", True) else 0
    return int(value) if isinstance(value, bool) else (value or 0)


def tres(text, name):
    """One count of a TRES string ("cpu=2,mem=1G,gres/gpu=1"); memory in MB."""
    for item in (text or "").split(","):
        key, _, value = item.partition("=")
        if key == name:
            m = re.fullmatch(r"([\d.]+)([KMGTP]?)", value)
            if not m:
                return 0
            scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}
            return float(m.group(1)) * scale[m.group(2)] if name == "mem" else float(m.group(1))
    return 0


def hostnames(hostlist):
    """Slurm's compressed host list ("node[1-3,05],pi2") as its names."""
    names = []
    for prefix, ranges, suffix in re.findall(r"([^,\[]+)(?:\[([^\]]+)\])?([^,]*)", hostlist or ""):
        for part in ranges.split(",") if ranges else []:
            lo, _, hi = part.partition("-")
            names += [f"{prefix}{i:0{len(lo)}d}{suffix}" for i in range(int(lo), int(hi or lo) + 1)]
        if not ranges:
            names.append(prefix + suffix)
    return names


def gpus(gres):
    """GPUs in a node's GRES string ("gpu:a100:2(S:0-1),gpu:1")."""
    return sum(int(m) for m in re.findall(r"gpu(?::[^:,(]+)?:(\d+)", gres or ""))


class Families:
    """Metric families in the order first named, each with HELP, TYPE and samples."""

    def __init__(self):
        self.families = {}

    def add(self, name, help_text, value, labels=None):
        family = self.families.setdefault(name, (help_text, []))
        family[1].append((labels or {}, value))

    def text(self):
        out = []
        for name, (help_text, samples) in self.families.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            for labels, value in samples:
                pairs = ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())
                value = int(value) if float(value).is_integer() else value
                out.append(f"{name}{{{pairs}}} {value}" if pairs else f"{name} {value}")
        return "\n".join(out) + "\n"


def escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def job_metrics(fams, squeue, native, partitions):
    """Jobs by state and what they hold: overall, per partition, user and account."""
    # (prefix, label, value) -> counts; every partition and the whole even without jobs.
    groups = defaultdict(Counter, {("slurm_jobs", None, None): Counter()})
    groups.update({("slurm_partition_jobs", "partition", p): Counter() for p in partitions})
    nodes_of = defaultdict(set)  # the same key -> nodes its running jobs hold
    reasons = Counter()
    for line in squeue.splitlines():
        fields = line.split("|")
        if len(fields) < 8:
            continue
        _, shown, reason, partition, user, account, alloc, nodelist = fields[:8]
        state, flags, hold = BASE_OF.get(shown, shown), [shown], reason.startswith("JobHeld")
        if state == "PENDING":
            reasons[reason or "None"] += 1
        counts = Counter({suffix: 1 for suffix, _, test in JOB_STATES if test(state, flags, hold)})
        counts["total"] = 1
        held = set()
        if state in HOLDING or shown in HOLDING:
            counts.update(cpus_alloc=tres(alloc, "cpu"), memory_alloc=tres(alloc, "mem"),
                          gpus_alloc=tres(alloc, "gres/gpu"))
            held = set(hostnames(nodelist))
        # A pending job may wait for any of several partitions ("debug,gpu"): each counts it.
        for key in [("slurm_jobs", None, None), ("slurm_user_jobs", "username", user),
                    ("slurm_account_jobs", "account", account)] + \
                [("slurm_partition_jobs", "partition", p) for p in set(partition.split(",")) if p]:
            groups[key].update(counts)
            nodes_of[key] |= held
    for reason, count in sorted(reasons.items()):
        fams.add("slurmbox_jobs_pending_reason", "Pending jobs by Slurm's reason", count, {"reason": reason})
    if native:
        return
    for (prefix, label, value), counts in sorted(groups.items(), key=lambda kv: str(kv[0])):
        counts["nodes_alloc"] = len(nodes_of[(prefix, label, value)])
        labels = {label: value} if label else {}
        fams.add(prefix, "Total number of jobs", counts["total"], labels)
        for suffix, what, _ in JOB_STATES:
            fams.add(f"{prefix}_{suffix}", f"Number of jobs in {what} state", counts[suffix], labels)
        for suffix, what in JOB_ALLOC:
            if suffix == "nodes_alloc" and label == "partition":
                continue  # Slurm counts nodes of partitions in slurm_partition_nodes_alloc
            fams.add(f"{prefix}_{suffix}", f"Total {what}", counts[suffix], labels)


def state_of(node):
    """A node's base state and its flags: ["IDLE", "DRAIN"] is ("IDLE", ["DRAIN"])."""
    state = node.get("state") or ["UNKNOWN"]
    return state[0], state[1:]


def node_metrics(fams, nodes):
    """Nodes by state, each node's CPUs, memory and GPUs, and their partitions' sums."""
    parts = defaultdict(Counter)
    fams.add("slurm_nodes", "Total number of nodes", len(nodes))
    for suffix, _, test in [row for row in NODE_STATES if row[0]]:
        count = sum(1 for n in nodes if test(*state_of(n)))
        fams.add(f"slurm_nodes_{suffix}", f"Number of nodes in state {suffix}", count)
    for n in nodes:
        cpus, alloc = num(n.get("cpus")), num(n.get("alloc_cpus"))
        memory, mem_alloc = num(n.get("real_memory")), num(n.get("alloc_memory"))
        figures = {
            "cpus": cpus, "cpus_alloc": alloc, "cpus_effective": num(n.get("effective_cpus")),
            "cpus_idle": num(n.get("effective_cpus")) - alloc, "gpus": gpus(n.get("gres")),
            "gpus_alloc": gpus(n.get("gres_used")), "memory_alloc_bytes": mem_alloc,
            "memory_effective_bytes": memory - num(n.get("specialized_memory")),
            "memory_free_bytes": num(n.get("free_mem")), "memory_bytes": memory,
        }
        for suffix, help_text, part_name in NODE_FIGURES:
            fams.add(f"slurm_node_{suffix}", help_text, figures[suffix], {"node": n["name"]})
        for p in n.get("partitions") or []:
            parts[p].update({name: figures[suffix] for suffix, _, name in NODE_FIGURES if name})
            parts[p].update({f"nodes_{name}": 1 for _, name, test in NODE_STATES if test(*state_of(n))})
            parts[p]["nodes"] += 1
    fams.add("slurm_partitions", "Total number of partitions", len(parts))
    for p, counts in sorted(parts.items()):
        fams.add("slurm_partition_nodes", "Nodes in this partition", counts["nodes"], {"partition": p})
        for name in [n for _, _, n in NODE_FIGURES if n] + [f"nodes_{n}" for _, n, _ in NODE_STATES]:
            fams.add(f"slurm_partition_{name}", f"Partition's {name.replace('_', ' ')}", counts[name],
                     {"partition": p})


def scheduler_metrics(fams, stats):
    """The scheduler's and backfill's cycles, sdiag's numbers under 26.05's names."""
    for name, path in SCHEDULER.items():
        value = stats
        for key in path.split("."):
            value = value.get(key, 0) if isinstance(value, dict) else 0
        fams.add(f"slurm_{name}", f"sdiag's {path}", num(value))


def slurm_conf():
    try:
        with open(SLURM_CONF) as f:
            return f.read()
    except OSError:
        return ""


def scrape():
    """One scrape: Slurm's commands side by side, then the families from what they say."""
    conf = slurm_conf()
    native = "MetricsType=metrics/openmetrics" in conf
    commands = {"jobs": SQUEUE}
    if not native:
        commands.update(nodes=["scontrol", "show", "nodes", "--json"], sdiag=["sdiag", "--json"])
    if "accounting_storage/slurmdbd" in conf:
        commands["dbd"] = ["sacctmgr", "ping"]
    running = {k: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
               for k, c in commands.items()}
    out = {}
    deadline = time.monotonic() + 8  # within Prometheus's scrape timeout (10 s), all together
    for key, proc in running.items():
        try:
            stdout, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            out[key] = (proc.returncode, stdout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out[key] = (-1, b"")
    fams = Families()
    up = out["jobs"][0] == 0
    fams.add("slurmbox_slurmctld_up", "Whether slurmctld answered this scrape", int(up))
    if "dbd" in out:
        rc, text = out["dbd"]
        fams.add("slurmbox_slurmdbd_up", "Whether slurmdbd answers", int(rc == 0 and b"UP" in text))
    nodes = []
    if not native and out["nodes"][0] == 0:
        nodes = json.loads(out["nodes"][1]).get("nodes", [])
    if up:
        partitions = {p for n in nodes for p in n.get("partitions") or []}
        job_metrics(fams, out["jobs"][1].decode(errors="replace"), native, partitions)
    if nodes:
        node_metrics(fams, nodes)
    if not native and out["sdiag"][0] == 0:
        scheduler_metrics(fams, json.loads(out["sdiag"][1]).get("statistics", {}))
    return fams.text()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] not in ("/", "/metrics"):
            self.send_error(404)
            return
        try:
            body, status = scrape().encode(), 200
        except Exception as e:  # a scrape that fails says why, and the next one tries again
            body, status = f"scrape failed: {e}\n".encode(), 500
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass  # a line per scrape would flood the container's log


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6821)
    args = parser.parse_args()
    ThreadingHTTPServer(("", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
