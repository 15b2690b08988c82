"""Generated email-open traffic whose truth is known: plan it, send it through an edge, count it.

``plan_traffic`` decides who opens what, with which client, from where; ``send_traffic`` sends
the plan over HTTP to an edge; ``expected`` computes the numbers the pipeline must report, from
what was sent and what the edge answered — never from the pipeline. ``run_traffic`` does all
three (the demo, its test and the fault drill use it).
"""

from processor.traffic.mix import Campaign, Planned, TrafficPlan, plan_traffic
from processor.traffic.send import TrafficResult, run_traffic, send_traffic
from processor.traffic.sent import Sent
from processor.traffic.truth import Expected, expected

__all__ = [
    "Campaign",
    "Expected",
    "Planned",
    "Sent",
    "TrafficPlan",
    "TrafficResult",
    "expected",
    "plan_traffic",
    "run_traffic",
    "send_traffic",
]
