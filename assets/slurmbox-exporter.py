#!/usr/bin/env python3
"""slurmbox-exporter: the cluster's numbers in OpenMetrics, built from Slurm's JSON.

(Placeholder: the metrics part's exporter is written next.)
"""
