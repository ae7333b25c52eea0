#!/usr/bin/env python3
"""Writes charts/redis-operator/files/dashboard.json, the Redis Cluster dashboard.

Edit the PANELS table here and re-run (python3 scripts/dashboard.py); the chart tests check
that every query parses (promtool) and names only metrics of files/metrics-allowlist.txt.
"""
import json
import os

SEL = 'namespace=~"$namespace",cluster=~"$cluster"'
RI = "$__rate_interval"

# (title, kind, unit, width, [(query, legend)])
PANELS = [
    ("Cluster state (1 = ok)", "stat", "none", 6,
     [(f"min by (namespace, cluster) (redis_cluster_state{{{SEL}}})", "{{namespace}}/{{cluster}}")]),
    ("Ready (operator)", "stat", "none", 6,
     [(f"redis_operator_cluster_ready{{{SEL}}}", "{{namespace}}/{{cluster}}")]),
    ("Nodes up", "stat", "none", 6,
     [(f"sum by (namespace, cluster) (redis_up{{{SEL}}})", "{{namespace}}/{{cluster}}")]),
    ("Operator is leader", "stat", "none", 6,
     [("max(redis_operator_leader)", "leader")]),
    ("Slots ok / pfail / fail", "timeseries", "none", 12,
     [(f"max by (cluster) (redis_cluster_slots_ok{{{SEL}}})", "ok {{cluster}}"),
      (f"max by (cluster) (redis_cluster_slots_pfail{{{SEL}}})", "pfail {{cluster}}"),
      (f"max by (cluster) (redis_cluster_slots_fail{{{SEL}}})", "fail {{cluster}}")]),
    ("Known nodes", "timeseries", "none", 12,
     [(f"max by (cluster) (redis_cluster_known_nodes{{{SEL}}})", "{{cluster}}")]),
    ("Commands per second", "timeseries", "ops", 12,
     [(f"sum by (pod) (rate(redis_commands_processed_total{{{SEL}}}[{RI}]))", "{{pod}}")]),
    ("Memory used / maxmemory", "timeseries", "bytes", 12,
     [(f"redis_memory_used_bytes{{{SEL}}}", "used {{pod}}"),
      (f"redis_memory_max_bytes{{{SEL}}}", "max {{pod}}")]),
    ("Keys", "timeseries", "short", 12,
     [(f"sum by (pod) (redis_db_keys{{{SEL}}})", "{{pod}}")]),
    ("Evicted keys per second", "timeseries", "short", 12,
     [(f"sum by (pod) (rate(redis_evicted_keys_total{{{SEL}}}[{RI}]))", "{{pod}}")]),
    ("Hit ratio", "timeseries", "percentunit", 12,
     [(f"sum by (cluster) (rate(redis_keyspace_hits_total{{{SEL}}}[{RI}])) / "
       f"(sum by (cluster) (rate(redis_keyspace_hits_total{{{SEL}}}[{RI}])) + "
       f"sum by (cluster) (rate(redis_keyspace_misses_total{{{SEL}}}[{RI}])))", "{{cluster}}")]),
    ("Replication offset lag", "timeseries", "bytes", 12,
     [(f"redis_master_repl_offset{{{SEL}}} - on (namespace, pod) group_right "
       f"redis_connected_slave_offset_bytes{{{SEL}}}", "{{pod}} -> {{slave_ip}}:{{slave_port}}")]),
    ("Connected replicas", "timeseries", "short", 12,
     [(f"redis_connected_slaves{{{SEL}}}", "{{pod}}")]),
    ("Masters", "timeseries", "short", 12,
     [(f'count by (cluster) (redis_instance_info{{{SEL},role="master"}})', "{{cluster}}")]),
    ("Slot migrations in progress", "timeseries", "short", 12,
     [(f"redis_operator_migration_slots_pending{{{SEL}}}", "pending {{cluster}}"),
      (f"sum by (cluster) (rate(redis_operator_migrated_slots_total{{{SEL}}}[{RI}]))", "slots/s {{cluster}}"),
      (f"sum by (cluster) (rate(redis_operator_migrated_keys_total{{{SEL}}}[{RI}]))", "keys/s {{cluster}}")]),
    ("Failovers", "timeseries", "short", 12,
     [(f'sum by (cluster) (increase(redis_operator_effects_total{{{SEL},kind="failover"}}[{RI}]))',
       "ordered by the operator {{cluster}}"),
      (f"max by (cluster) (changes(redis_cluster_current_epoch{{{SEL}}}[{RI}]))",
       "config epoch changes {{cluster}}")]),
    ("Reconcile errors", "timeseries", "short", 12,
     [(f"sum by (reason) (rate(redis_operator_reconcile_errors_total[{RI}]))", "{{reason}}"),
      (f'sum by (cluster) (rate(redis_operator_reconcile_passes_total{{{SEL},outcome!="ok"}}[{RI}]))',
       "failed passes {{cluster}}")]),
    ("Reconcile duration (p95)", "timeseries", "s", 12,
     [(f"histogram_quantile(0.95, sum by (le) (rate(redis_operator_reconcile_duration_seconds_bucket[{RI}])))",
       "p95")]),
]

DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(i, x, y, title, kind, unit, width, targets):
    return {
        "id": i + 1,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": width, "h": 4 if kind == "stat" else 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + j), "datasource": DS, "expr": q, "legendFormat": legend}
            for j, (q, legend) in enumerate(targets)
        ],
    }


def main():
    panels, x, y = [], 0, 0
    for i, (title, kind, unit, width, targets) in enumerate(PANELS):
        if x + width > 24:
            x, y = 0, y + (4 if panels and panels[-1]["type"] == "stat" else 8)
        panels.append(panel(i, x, y, title, kind, unit, width, targets))
        x += width

    def var(name, query):
        return {
            "name": name, "label": name, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": name}, "definition": query,
            "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
            "current": {"text": "All", "value": "$__all"},
        }

    dashboard = {
        "uid": "redis-operator-cluster",
        "title": "Redis Cluster (redis-operator)",
        "tags": ["redis", "redis-operator"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource",
             "query": "prometheus", "current": {}},
            var("namespace", "label_values(redis_up, namespace)"),
            var("cluster", 'label_values(redis_up{namespace=~"$namespace"}, cluster)'),
        ]},
        "panels": panels,
    }
    out = os.path.join(os.path.dirname(__file__), "..", "charts", "redis-operator", "files",
                       "dashboard.json")
    with open(out, "w") as f:
        json.dump(dashboard, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
