#!/usr/bin/env bash
# The CPU study of docs/results/study.md: `bash scripts/study.sh`.
#
# Builds the study task (dataset.build_sudoku_rounds_dataset: Sudoku spread over rounds of singles,
# with a harder held-out split), trains every arm (config/train/<arm>_study.yaml: same budget,
# 16 training segments with the ACT head) once per seed, then evaluates each run on the test split
# and on the harder split:
#   eval_depth[_hard]     B = 1 at D in DEPTHS, with per-trajectory rows (difficulty buckets, residuals);
#   eval_breadth[_hard]   B in BREADTHS (HARD_BREADTHS on the harder split) at D in BREADTH_DEPTHS,
#                         top-1 convergence selection, majority vote and any-correct (arms with a
#                         random initial state only: the others restart from one state, so their
#                         restarts coincide), BATCH / max(B) puzzles per batch;
#   frontier              scripts/frontier.py on the test split (FRONTIER_ARMS): fixed depths against
#                         elastic stop rules up to ELASTIC_DEPTH segments;
# and writes tables and plots to $REPORT (scripts/study_report.py). The feedforward arm is one
# pass by construction and is evaluated at D = 1 only. Finished runs and evaluations are kept, so an
# interrupted study resumes where it stopped; an evaluation asked with other options runs again. Environment knobs (defaults in brackets):
#   ARMS ["eqr trm transformer eqr_ri eqr_ni"]  SEEDS ["0 1 2"]  STEPS [recipe's max_steps]
#   OUT [runs/study]  REPORT [$OUT/report]  DATA_SEED [1]  TRAIN_SAMPLES [1000]  NUM_AUG [100]
#   TEST_SAMPLES [300]  DEPTHS [[1,2,4,...,1024]]  ABLATION_DEPTHS [[1,2,4,...,256]: the RI-only and
#   NI-only arms]  BREADTHS [[4,16,64]]  HARD_BREADTHS [[4,16]; empty: no breadth on the harder split]
#   BREADTH_DEPTHS [[4,16]]
#   FRONTIER_ARMS ["eqr trm"; empty: none]  FRONTIER_DEPTHS [[1,2,4,...,256]]
#   ELASTIC [[stable:1,stable:2,stable:4,stable:8,stable:2|q]]  ELASTIC_DEPTH [1024]
#   BATCH [300: trajectories per evaluation batch; B = 1: puzzles. About 300 rows is the fastest on one
#   CPU thread (a breadth pass of 4800 rows runs 3x slower); the batch changes no trajectory, so it is
#   not among the options that decide whether an evaluation is done]
#   CHECKPOINTS [unset: train]: a folder of released <arm>/seed<s>.pth (checkpoints/study) to evaluate
#   instead of training; scripts/reproduce_tables.sh --study uses it
#   JOBS [1]: runs at once, each in its own worker (log: $OUT/worker<k>.log); a worker takes the next run
#   no other worker has taken, so a long run does not hold up the runs queued behind it
#   THREADS [1]: OMP_NUM_THREADS of every job. The study's numbers were made with one thread per job
#   (JOBS=2 on 2 cores); float32 sums of another thread count may differ in the last bits.
set -euo pipefail
cd "$(dirname "$0")/.."

ARMS=${ARMS:-"eqr trm transformer eqr_ri eqr_ni"}
SEEDS=${SEEDS:-"0 1 2"}
STEPS=${STEPS:-}
OUT=${OUT:-runs/study}
REPORT=${REPORT:-$OUT/report}
DATA_SEED=${DATA_SEED:-1}
TRAIN_SAMPLES=${TRAIN_SAMPLES:-1000}
NUM_AUG=${NUM_AUG:-100}
TEST_SAMPLES=${TEST_SAMPLES:-300}
DEPTHS=${DEPTHS:-"[1,2,4,8,16,32,64,128,256,512,1024]"}
ABLATION_DEPTHS=${ABLATION_DEPTHS:-"[1,2,4,8,16,32,64,128,256]"}
BREADTHS=${BREADTHS:-"[4,16,64]"}
HARD_BREADTHS=${HARD_BREADTHS-"[4,16]"}
BREADTH_DEPTHS=${BREADTH_DEPTHS:-"[4,16]"}
FRONTIER_DEPTHS=${FRONTIER_DEPTHS:-"[1,2,4,8,16,32,64,128,256]"}
ELASTIC=${ELASTIC:-"[stable:1,stable:2,stable:4,stable:8,stable:2|q]"}
ELASTIC_DEPTH=${ELASTIC_DEPTH:-1024}
BATCH=${BATCH:-300}
CHECKPOINTS=${CHECKPOINTS:-}
JOBS=${JOBS:-1}
FRONTIER_ARMS=${FRONTIER_ARMS-"eqr trm"}  # set but empty: no frontier
export OMP_NUM_THREADS=${THREADS:-1}
DATA=$OUT/data/sudoku-rounds

echo "== data: $DATA"
[ -d "$DATA" ] || python3 -m dataset.build_sudoku_rounds_dataset --output-dir "$DATA" --seed "$DATA_SEED" \
    --train-samples "$TRAIN_SAMPLES" --num-aug "$NUM_AUG" --val-samples "$TEST_SAMPLES" \
    --test-samples "$TEST_SAMPLES" --hard-val-samples "$TEST_SAMPLES" --hard-test-samples "$TEST_SAMPLES"

recurrent() { [ "$1" != transformer ]; }
random_init() { [ "$1" = eqr ] || [ "$1" = eqr_ri ]; }
ablation() { [ "$1" = eqr_ri ] || [ "$1" = eqr_ni ]; }

evaluate() {  # evaluate NAME SPLIT BATCH OPTIONS...: $CKPT into $RUN/NAME, skipped when done with these options
    local name=$1 split=$2 batch=$3
    shift 3
    local asked="$CKPT $split $*"
    [ "$(cat "$RUN/$name/options.txt" 2>/dev/null)" = "$asked" ] && return
    echo "== evaluate $arm seed $seed: $name"
    rm -rf "${RUN:?}/$name.partial"
    python3 evaluate.py checkpoint="$CKPT" dataset_data_path="$DATA" split="$split" global_batch_size="$batch" \
        plots=false reference_files=false progress=false output_dir="$RUN/$name.partial" "$@"
    echo "$asked" > "$RUN/$name.partial/options.txt"
    rm -rf "${RUN:?}/$name"
    mv "$RUN/$name.partial" "$RUN/$name"
}

breadth() {  # breadth NAME SPLIT BREADTHS: restarts with top-1 convergence selection, about BATCH rows per batch
    local widest
    widest=$(tr -d '[] ' <<< "$3" | tr ',' '\n' | sort -n | tail -1)
    evaluate "$1" "$2" $(( BATCH / widest > 0 ? BATCH / widest : 1 )) depths="$BREADTH_DEPTHS" different_init="$3" \
        convergence_top_k=1 per_trajectory=true
}

frontier() {  # the elastic frontier on the test split, skipped when done with these options
    local asked="$CKPT $FRONTIER_DEPTHS $ELASTIC $ELASTIC_DEPTH"
    [ "$(cat "$RUN/frontier/options.txt" 2>/dev/null)" = "$asked" ] && return
    echo "== frontier $arm seed $seed"
    rm -rf "${RUN:?}/frontier.partial"
    python3 scripts/frontier.py checkpoint="$CKPT" dataset_data_path="$DATA" split=test global_batch_size="$BATCH" \
        depths="$FRONTIER_DEPTHS" elastic="$ELASTIC" elastic_depth="$ELASTIC_DEPTH" progress=false \
        output_dir="$RUN/frontier.partial"
    echo "$asked" > "$RUN/frontier.partial/options.txt"
    rm -rf "${RUN:?}/frontier"
    mv "$RUN/frontier.partial" "$RUN/frontier"
}

run_item() {  # run_item SEED ARM: train (or take the released weights) and evaluate one run
    seed=$1 arm=$2
    RUN=$OUT/$arm/seed$seed
    local steps
    steps=${STEPS:-$(python3 -c "import yaml; print(yaml.safe_load(open('config/train/${arm}_study.yaml'))['max_steps'])")}
    CKPT=$RUN/step_$steps.pth
    if [ -n "$CHECKPOINTS" ]; then  # released weights: evaluate them, train nothing
        CKPT=$CHECKPOINTS/$arm/seed$seed.pth
        [ -f "$CKPT" ] || { echo "== skip $arm seed $seed: no $CKPT"; return 0; }
        mkdir -p "$RUN"
    elif [ ! -f "$CKPT" ]; then
        echo "== train $arm seed $seed: config/train/${arm}_study.yaml, $steps steps -> $RUN"
        local start
        start=$(date +%s)
        python3 pretrain.py --config-name "train/${arm}_study" seed="$seed" max_steps="$steps" \
            checkpoint_interval_steps="$steps" dataset.data_path="$DATA" checkpoint_path="$RUN" \
            resume=true wandb_mode=disabled
        echo $(( $(date +%s) - start )) > "$RUN/train_wall_s.txt"
    fi
    if ! recurrent "$arm"; then
        evaluate eval_depth test "$BATCH" depths=1
        evaluate eval_depth_hard hard_test "$BATCH" depths=1
        return 0
    fi
    local depths=$DEPTHS
    ablation "$arm" && depths=$ABLATION_DEPTHS
    evaluate eval_depth test "$BATCH" depths="$depths" per_trajectory=true
    evaluate eval_depth_hard hard_test "$BATCH" depths="$depths" per_trajectory=true
    if random_init "$arm"; then
        breadth eval_breadth test "$BREADTHS"
        [ -z "$HARD_BREADTHS" ] || breadth eval_breadth_hard hard_test "$HARD_BREADTHS"
    fi
    if [[ " $FRONTIER_ARMS " == *" $arm "* ]]; then
        frontier
    fi
}

worker() {  # the next run no worker has claimed, until none is left (mkdir is the atomic claim)
    local i
    for i in "${!ITEMS[@]}"; do
        if mkdir "$CLAIMS/$i" 2> /dev/null; then
            run_item ${ITEMS[$i]}
        fi
    done
}

ITEMS=()
for seed in $SEEDS; do
    for arm in $ARMS; do
        ITEMS+=("$seed $arm")
    done
done
CLAIMS=$OUT/.claims.$$
rm -rf "$CLAIMS" && mkdir -p "$CLAIMS"
trap 'rm -rf "$CLAIMS"' EXIT
if [ "$JOBS" = 1 ]; then
    worker
else
    pids=()
    for (( k = 0; k < JOBS; k++ )); do
        echo "== worker $k: log $OUT/worker$k.log"
        worker > "$OUT/worker$k.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || { echo "a worker failed: see $OUT/worker*.log" >&2; exit 1; }
    done
fi

echo "== report -> $REPORT"
python3 scripts/study_report.py "$OUT" --report "$REPORT"
