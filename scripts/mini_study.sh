#!/usr/bin/env bash
# CPU-scale study of EqR vs TRM (docs/results/mini_study.md): `bash scripts/mini_study.sh`.
#
# Trains EqR and TRM with the same budget (config/train/{eqr,trm}_mini.yaml: halt_max_steps = 2)
# on 9x9 mazes with paths of 2-30 moves, once per seed, then evaluates every run on the test mazes
# (eval_indist) and on a second set with only the longest paths, 24-30 moves (eval_long):
#   (a) at the trained depth D = 2,
#   (b) at D = 1, 2, 8, 32, 128 (1x, 4x, 16x, 64x the trained depth),
#   (c) at D = 8 with B = 4 and 8 restarts, convergence top-1 and majority vote, test mazes
#       (EqR only: TRM starts every restart from the same state, so its restarts are identical),
#   (d) per trajectory: final residual against correctness (test mazes, D = 32, B = 1),
# and writes tables and plots to $REPORT. About 8 min of training and 5-11 min of evaluation per run
# on 2 CPU cores. Environment knobs (defaults in brackets):
#   SEEDS ["0 1 2"]  STEPS [1500]  OUT [runs/mini_study]  REPORT [$OUT/report]
#   TRAIN_SAMPLES [2000]  TEST_SAMPLES [500]  HARD_SAMPLES [400]
#   DEPTHS [[1,2,8,32,128]]  BREADTH_DEPTH [8]  BREADTHS [[4,8]]  RESIDUAL_DEPTH [32]
# Finished runs and evaluations are kept, so an interrupted study resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-"0 1 2"}
STEPS=${STEPS:-1500}
OUT=${OUT:-runs/mini_study}
REPORT=${REPORT:-$OUT/report}
TRAIN_SAMPLES=${TRAIN_SAMPLES:-2000}
TEST_SAMPLES=${TEST_SAMPLES:-500}
HARD_SAMPLES=${HARD_SAMPLES:-400}
DEPTHS=${DEPTHS:-"[1,2,8,32,128]"}
BREADTH_DEPTH=${BREADTH_DEPTH:-8}
BREADTHS=${BREADTHS:-"[4,8]"}
RESIDUAL_DEPTH=${RESIDUAL_DEPTH:-32}
DATA=$OUT/data/maze-9x9-mini
HARD=$OUT/data/maze-9x9-mini-long

echo "== data: $DATA (2-30 moves), $HARD (24-30 moves)"
[ -d "$DATA" ] || python3 -m dataset.build_maze_unique_dataset --output-dir "$DATA" --grid-size 9 \
    --train-samples "$TRAIN_SAMPLES" --test-samples "$TEST_SAMPLES" --min-path-length 2 --max-path-length 30 --seed 0
[ -d "$HARD" ] || python3 -m dataset.build_maze_unique_dataset --output-dir "$HARD" --grid-size 9 \
    --train-samples 1 --test-samples "$HARD_SAMPLES" --min-path-length 24 --max-path-length 30 --seed 1
python3 -m dataset.baselines "$DATA"
python3 -m dataset.baselines "$HARD"

evaluate() {  # evaluate NAME DATA OPTIONS...: $CKPT into $RUN/NAME, skipped when NAME is complete
    local name=$1 data=$2
    shift 2
    compgen -G "$RUN/$name/sweep_*/eval_summary.md" > /dev/null && return
    echo "== evaluate $arm seed $seed: $name"
    python3 evaluate.py checkpoint="$CKPT" dataset_data_path="$data" global_batch_size=100 \
        plots=false output_dir="$RUN/$name.partial" "$@"
    rm -rf "${RUN:?}/$name"
    mv "$RUN/$name.partial" "$RUN/$name"
}

for seed in $SEEDS; do
    for arm in eqr trm; do
        RUN=$OUT/$arm/seed$seed
        CKPT=$RUN/step_$STEPS.pth
        if [ ! -f "$CKPT" ]; then
            echo "== train $arm seed $seed: config/train/${arm}_mini.yaml, $STEPS steps -> $RUN"
            start=$(date +%s)
            python3 pretrain.py --config-name "train/${arm}_mini" seed="$seed" max_steps="$STEPS" \
                checkpoint_interval_steps="$STEPS" dataset.data_path="$DATA" checkpoint_path="$RUN" \
                wandb_mode=disabled
            echo $(( $(date +%s) - start )) > "$RUN/train_wall_s.txt"
        fi
        evaluate eval_indist "$DATA" depths="$DEPTHS" per_trajectory=true
        evaluate eval_long "$HARD" depths="$DEPTHS" per_trajectory=true
        if [ "$arm" = eqr ]; then
            evaluate eval_breadth "$DATA" depths="$BREADTH_DEPTH" different_init="$BREADTHS" \
                convergence_top_k=1
        fi
    done
done

echo "== report -> $REPORT"
python3 -m scripts.mini_study_report "$OUT" --report "$REPORT" --trained-depth 2 \
    --breadth-depth "$BREADTH_DEPTH" --residual-depth "$RESIDUAL_DEPTH"
