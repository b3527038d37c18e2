"""Analytics read model: idempotent projections of survey/feedback/ticket/task/O-data events into daily rollups by
org unit × touchpoint × journey stage × channel, queried with org-subtree scoping, drill-down, X+O fusion and KPIs."""
