#!/bin/bash
# Re-evaluates the frozen-actor RL-only finals (docs/results/ablations/idql-lift-actor-lr-0: the policy is the
# pre-trained one, only the critics' pick differs) with pick margins 1 (the default) and 3; one JSON line per run.
#   bash docs/results/ablations/idql_lift_margin_reeval.sh > docs/results/ablations/idql-lift-actor-lr-0/margin_reeval.jsonl
for s in 0 1 2 3 4; do
  run=runs/bench/paper/reduced/lift/algo-idql_rl.actor-lr-0/algo-idql_method-rl-only-s$s
  for margin in 1 3; do
    inril eval "$run" rl.pick_margin=$margin 2>/dev/null |
      python3 -c "import json, sys; r = json.load(sys.stdin); print(json.dumps({'run': '$run', 'pick_margin': $margin, 'success_rate': r['success_rate'], 'n_episodes': r['n_episodes']}))"
  done
done
