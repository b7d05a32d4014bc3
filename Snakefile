# eeg2fmri: EEG-to-fMRI synthesis experiments, from raw recordings to tables and figures.
#   snakemake --cores all                                  the default experiment (config.yaml)
#   snakemake results/sim/e2fnet/fold-sub-03/metrics.json  one fold of one model
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from eeg2fmri.config import config_errors
from eeg2fmri.io import hold_directory, unwritable

min_version("9.0")


configfile: Path(workflow.basedir) / "config.yaml"


SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
if problems := config_errors(config, str(SCHEMA)):
    raise WorkflowError("invalid configuration:\n  " + "\n  ".join(problems))
validate(config, str(SCHEMA))  # fills in the schema's defaults
# Snakemake keeps its state in .snakemake/ of the working directory (and crashes with a
# traceback where it cannot create it): say so in one line instead, dry runs included.
if why := unwritable(Path.cwd()):
    raise WorkflowError(f"the working directory cannot be written ({why}): run snakemake from, "
                        "or point -d/--directory at, a folder you can write")


# One run at a time in a working directory: a second one would find the first one's running
# jobs' outputs "incomplete" and advise --rerun-incomplete, which deletes them.
if workflow.is_main_process and (holder := hold_directory(Path.cwd() / ".snakemake")):
    raise WorkflowError(f"another snakemake run holds this directory ({holder}): wait for it to "
                        "end (or stop it), or run from another directory with -d")


# Every run writes its logs, tables and settings records under results_root (dry runs too: the
# records, workflow/rules/common.smk settings_file): refuse before the DAG is built.
if why := unwritable(config["results_root"]):
    raise WorkflowError(f"results_root '{config['results_root']}' cannot be written ({why}): set "
                        "results_root in config.yaml (or --config results_root=...) to a "
                        "folder you can write")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/synthesize.smk"


for _name in config["datasets"]:  # config `folds` naming no fold: one line, before any job
    if not dataset(_name).from_participants or is_local(_name):
        fold_names(_name)


onerror:
    # the failing jobs' own one-line errors on the terminal (Snakemake points at the log files)
    from eeg2fmri.joblogs import report

    if text := report(log):
        print(f"\n{text}", file=sys.stderr, flush=True)


onsuccess:
    for name in config["datasets"]:
        table = Path(RESULTS) / name / "summary" / "summary.md"
        if table.is_file():
            summary = table.read_text().split("\n\n## ")[0]
            print(f"\n{table}:\n{summary}", flush=True)


rule all:
    input:
        expand(f"{RESULTS}/{{dataset}}/summary/summary.md", dataset=config["datasets"]),
        synthesis_outputs(),
    default_target: True
