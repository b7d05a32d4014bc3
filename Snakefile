# eeg2fmri: EEG-to-fMRI synthesis experiments, from raw recordings to tables and figures.
#   snakemake --cores all                                  the default experiment (config.yaml)
#   snakemake results/sim/e2fnet/fold-sub-03/metrics.json  one fold of one model
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from eeg2fmri.config import config_errors
from eeg2fmri.io import unwritable

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


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/synthesize.smk"


onstart:
    # Every run writes its logs and tables under results_root: refuse before the first job.
    if why := unwritable(RESULTS):
        raise WorkflowError(f"results_root '{RESULTS}' cannot be written ({why}): set "
                            "results_root in config.yaml (or --config results_root=...) to a "
                            "folder you can write")


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
