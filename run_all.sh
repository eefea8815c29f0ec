#!/usr/bin/env bash
# Reproduce every figure and table of the paper, or run the test suite: see usage below, or ./run_all.sh --help.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: ./run_all.sh [--extras | --extras-only | --test | --setup | --help]

Reproduce every figure and table of the paper, or run the test suite.

  (no option)   set up .venv (first run only), then execute notebooks/NN_*.ipynb in order with
                papermill (full profile); regenerates figures/ and tables/ but for the extras' files.
  --extras      the same, then the extras: the benchmark scripts whose tables and figures are committed
                (docs/reproduce.md lists each file and what writes it); with them every committed file.
  --extras-only the extras alone, on the notebooks' results already in results/full/.
  --test        same set-up, then pytest tests/ and pytest --nbmake notebooks/ (fast profile, in a
                temporary results folder that is removed afterwards).
  --setup       set up .venv only.
  -h, --help    show this help and exit.

PDB files are read from $CRYOSAMPLER_PDB_DIR (see README, "Data").
EOF
}

# Arguments are checked before anything is set up or run.
mode=reproduce
if [ $# -gt 1 ]; then
  echo "run_all.sh: unexpected argument '$2' (at most one option; try --help)" >&2
  exit 2
fi
case "${1:-}" in
  "") ;;
  --test) mode=test ;;
  --extras) mode=extras ;;
  --extras-only) mode=extras-only ;;
  --setup) mode=setup ;;
  -h|--help) usage; exit 0 ;;
  *) echo "run_all.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
esac

cd "$(dirname "$0")"
ROOT=$(pwd)

# --extras-only reads the notebooks' full-profile results: refuse before any set-up when they are not there.
if [ "$mode" = extras-only ]; then
  for needed in results/full/data/dataset.csv results/full/samples results/full/domain_motion/run/checkpoint.pt; do
    if [ ! -e "$needed" ]; then
      echo "run_all.sh: $needed is missing: the extras read the notebooks' full-profile results; run ./run_all.sh first (or ./run_all.sh --extras for both)" >&2
      exit 2
    fi
  done
fi
VENV="$ROOT/.venv"

# Set up .venv once; redo it when pyproject.toml changes (its hash is the stamp).
stamp="$VENV/.cryosampler-stamp"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # $PYTHON if set, else the first of python3.11, python3.12, python3 that runs and is supported
  # (pyproject.toml: requires-python). 3.11 first: there pip finds the pinned torch as a CPU wheel (1.8 GB
  # venv); for 3.12 it resolved PyPI's CUDA build (5.5 GB), which a CPU-only project does not need.
  supported() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 15))' >/dev/null 2>&1; }
  PY=""
  for candidate in ${PYTHON:-python3.11 python3.12 python3}; do
    if supported "$candidate"; then PY=$candidate; break; fi
  done
  if [ -z "$PY" ]; then
    echo "run_all.sh: error: no Python 3.11-3.14 found (tried ${PYTHON:-python3.11, python3.12, python3}); set PYTHON=/path/to/python3.12" >&2
    exit 2
  fi
  echo "[run_all] setting up $VENV with $("$PY" --version) (first run takes a minute or two)"
  start=$(date +%s)
  "$PY" -m venv --clear "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # torch first and alone, so pip takes the pinned CPU build where one is at hand rather than resolving a CUDA one.
  torch_pin=$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
  "$VENV/bin/python" -m pip install --quiet "$torch_pin"
  # The library plus the extras that the notebooks and the tests need (cryoDRGN: notebook 08's upstream).
  "$VENV/bin/python" -m pip install --quiet -e ".[notebooks,test,cryodrgn]"
  echo "$want" > "$stamp"
  echo "[run_all] environment ready in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1)"
fi
export PATH="$VENV/bin:$PATH"

if [ -n "${CRYOSAMPLER_PDB_DIR:-}" ]; then
  CRYOSAMPLER_PDB_DIR=$(cd "$CRYOSAMPLER_PDB_DIR" && pwd)
  export CRYOSAMPLER_PDB_DIR
fi
# Notebooks and tests share the machine's cores; keep torch from oversubscribing them.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"

run_notebooks() {
  mkdir -p results/full/executed
  timings=results/full/executed/timings.csv
  echo "notebook,seconds,finished" > "$timings"
  all_start=$(date +%s)
  # Notebooks 06 and 07 download two PyPI packages' files once into $CRYOSAMPLER_DATA_DIR (default
  # results/downloads/) with `pip download --no-deps` and read them from there, never installing them: the
  # bioemu-benchmarks 0.0.2.post1 wheel (06; it pins numpy<2 and mdtraj 1.9.9) and the MDAnalysisTests 2.11.0
  # archive (07; only adk_dims.dcd, adk_closed.pdb, adk_open.pdb and LICENSE are kept).
  for nb in notebooks/[0-9][0-9]_*.ipynb; do
    name=$(basename "$nb")
    echo "[run_all] $name"
    start=$(date +%s)
    # --log-output streams each cell's output (training progress lines among them) to the terminal as it
    # comes, so a notebook's 20 minutes do not show as one frozen progress line.
    if ! python -m papermill "$nb" "results/full/executed/$name" -p profile full \
         --cwd notebooks --progress-bar --log-output; then
      echo "[run_all] FAILED in $name: the failing cell is marked in results/full/executed/$name" >&2
      exit 1
    fi
    seconds=$(( $(date +%s) - start ))
    echo "$name,$seconds,$(date -u +%FT%TZ)" >> "$timings"
    echo "[run_all] $name took $(( seconds / 60 )) min $(( seconds % 60 )) s"
  done
  # GPU measurements recorded in benchmarks/measured/ (no GPU needed: it only reads those files).
  python benchmarks/report_gpu_check.py
  total=$(( $(date +%s) - all_start ))
  echo "[run_all] done in $(( total / 60 )) min $(( total % 60 )) s (per notebook: $timings): figures/ and tables/ regenerated but for the extras' files (./run_all.sh --extras-only)"
}

# The extras: benchmark scripts whose outputs are committed, each on the full profile's results (notebooks 01, 03,
# 06) or on data it downloads itself. Each line is one producer of docs/reproduce.md's manifest; its output goes to
# results/full/extras/<name>.log as well as the terminal, its wall time to results/full/extras/timings.csv.
EXTRAS=(
  "anm_geometry|python benchmarks/anm_geometry.py --tables tables"
  "experimental_maps|python benchmarks/experimental_maps.py --steps 100 --work results/full/experimental_maps --tables tables"
  "fit_methods|python benchmarks/fit_methods.py --domain-motion results/full/domain_motion --tables tables"
  "ideal_denoiser|python benchmarks/ideal_denoiser.py --run results/full/domain_motion/run --tables tables --figures figures"
  "relax_table1|python benchmarks/relax_check.py --table1 results/full --samples 4 --csv tables/relax_table1.csv"
)

run_extras() {
  export PYTHONUNBUFFERED=1  # progress lines reach the terminal through tee as they come
  # relax_check needs OpenMM, the optional [relax] extra, which the set-up above leaves out.
  if ! python -c "import openmm" >/dev/null 2>&1; then
    echo "[run_all] installing the [relax] extra (OpenMM) for the extras"
    python -m pip install --quiet -e ".[relax]"
  fi
  mkdir -p results/full/extras
  timings=results/full/extras/timings.csv
  echo "extra,seconds,finished" > "$timings"
  all_start=$(date +%s)
  for entry in "${EXTRAS[@]}"; do
    name=${entry%%|*}
    command=${entry#*|}
    echo "[run_all] extra $name: $command"
    start=$(date +%s)
    if ! $command 2>&1 | tee "results/full/extras/$name.log"; then
      echo "[run_all] FAILED in extra $name: see results/full/extras/$name.log" >&2
      exit 1
    fi
    seconds=$(( $(date +%s) - start ))
    echo "$name,$seconds,$(date -u +%FT%TZ)" >> "$timings"
    echo "[run_all] extra $name took $(( seconds / 60 )) min $(( seconds % 60 )) s"
  done
  total=$(( $(date +%s) - all_start ))
  echo "[run_all] extras done in $(( total / 60 )) min $(( total % 60 )) s (per script: $timings)"
}

case "$mode" in
  setup) exit 0 ;;
  test)
    # The notebooks run against a fresh results folder, so that nothing left by an earlier run (e.g. a
    # checkpoint written with other settings) changes what the tests see.
    results=$(mktemp -d "${TMPDIR:-/tmp}/cryosampler-test.XXXXXX")
    trap 'rm -rf "$results"' EXIT
    CRYOSAMPLER_RESULTS="$results" python -m pytest tests --nbmake notebooks -p no:cacheprovider
    ;;
  reproduce) run_notebooks ;;
  extras) run_notebooks; run_extras ;;
  extras-only) run_extras ;;
esac
