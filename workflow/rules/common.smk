# Helpers shared by the rules. Logic lives in the eeg2fmri package; rules only wire files.
import functools
import json
import re
import shlex

from snakemake.exceptions import WorkflowError

from eeg2fmri.config import arch_kind, seeds, train_spec
from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.data.fetch import file_states, needed_files
from eeg2fmri.data.formats import FORMATS, format_by_extension, reader
from eeg2fmri.errors import InputError
from eeg2fmri.made_with import stamp
from eeg2fmri.sources import VERB_MODULES, code_digest
from eeg2fmri.store import STORE_FILES
from eeg2fmri.training.folds import fold_by_name

DATA = config["data_root"]
RESULTS = config["results_root"]
RAW = f"{DATA}/raw"
FEATURES = f"{DATA}/features"
CODE = {verb: code_digest(verb) for verb in VERB_MODULES}
STRICT = "--strict" if config["download_strict"] else ""  # fetch: refuse files without checksums
FEATURE_FILES = list(STORE_FILES)
# Software environment of every rule, used with --software-deployment-method conda.
ENV = str(Path(workflow.basedir) / "envs" / f"eeg2fmri-{config['software_env']}.yaml")


wildcard_constraints:
    dataset=r"[a-z0-9]+",
    subject=r"sub-[A-Za-z0-9]+",
    model=r"[A-Za-z0-9_]+",
    fold=r"fold-sub-[A-Za-z0-9]+|split-[a-z0-9]+",
    seed=r"[0-9]+",


def code(verb):
    """Digest of the package source `eeg2fmri <verb>` runs (its import closure): a rule passes
    it as a parameter, so that editing any of those files reruns the rule."""
    return CODE[verb]


def declared_root(name):
    """The root of a dataset declared with its files (`dataset_settings.<name>.root`)."""
    return config["dataset_settings"].get(name, {}).get("root")


def raw_root(name):
    """A real dataset's raw root: its declared root, a local copy named in config `raw_roots`,
    else the download location under data_root."""
    return declared_root(name) or config["raw_roots"].get(name) or f"{RAW}/{name}"


def is_local(name):
    """Files already on disk (declared root or raw_roots): verified, never downloaded."""
    return bool(declared_root(name) or name in config["raw_roots"])


@functools.cache  # one reading of the headers per subject and DAG (fetch, its states, inspect)
def local_files(name, subject):
    """A local copy's files that the subject's preprocessing reads (`fetch.needed_files`): the
    fetch rule's inputs, so that a file replaced in place reruns what was made from it."""
    if not is_local(name):
        return []
    try:
        return [str(f) for f in needed_files(dataset(name), Path(raw_root(name)), subject)]
    except InputError:
        return []  # a file missing: the fetch job names it, in one line


def settings_file(path, settings):
    """A job's settings as an input file (`made_with.stamp`): rewritten only when they change,
    so that a results_root or data_root shared by experiments with other settings reruns the
    job in any working directory instead of serving the other experiment's output."""
    try:
        return stamp(path, settings)
    except InputError as e:
        raise WorkflowError(f"{e} (this run records its settings there)") from None


def local_states(wildcards):
    """The fetch job's record of its local files' sizes and times (a copy that kept an older
    time, cp -p, still reruns it)."""
    if not is_local(wildcards.dataset):
        return []
    files = [Path(f) for f in local_files(wildcards.dataset, wildcards.subject)]
    return settings_file(f"{DATA}/manifests/{wildcards.dataset}/.{wildcards.subject}.files.json",
                         file_states(files))


def dataset_config(name):
    """The config a dataset's verbs need: its entry and subject choice (JSON)."""
    entry = config["dataset_settings"].get(name)
    chosen = config["subjects"].get(name)
    return {**({"dataset_settings": {name: entry}} if entry else {}),
            **({"subjects": {name: chosen}} if chosen else {})}


def dataset(name):
    try:
        return get_dataset(name, config, None if name == "sim" else raw_root(name))
    except InputError as e:
        raise WorkflowError(f"dataset {name}: {e}") from None


def subjects(name):
    """The dataset's subjects; where they are those of its participants.tsv (CN-EPFL), that file
    is fetched first by the `index` checkpoint."""
    ds = dataset(name)
    if ds.from_participants and not is_local(name):
        checkpoints.index.get(dataset=name)
        ds = dataset(name)
    return list(ds.subjects)


def fold_names(name):
    """The folds to run: all of the dataset's, or those named by config `folds`."""
    names = dataset(name).folds()
    chosen = config.get("folds")
    if not chosen:
        return names
    chosen = [c if c.startswith(("fold-", "split-")) else f"fold-{c}" for c in chosen]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise WorkflowError(f"config folds: {unknown} are not folds of dataset {name!r} "
                            f"({', '.join(names)})")
    return [n for n in names if n in chosen]


def fold_of(wildcards):
    return fold_by_name(subjects(wildcards.dataset), wildcards.fold,
                        dataset(wildcards.dataset).splits)


def features_of(dataset_name, subject_ids):
    return [f"{FEATURES}/{dataset_name}/{s}/{f}" for s in subject_ids for f in FEATURE_FILES]


def preprocess_settings(name):
    """The config that preprocessing depends on (and nothing else, so training edits don't
    rerun it), and the digest of the code that preprocesses: a features store records them, and
    train, evaluate and the ceiling refuse a store made otherwise (another experiment or another
    eeg2fmri sharing data_root, where Snakemake's own records do not reach)."""
    features = {k: config["features"][k] for k in ("n_bins", "pairing", "bold_scaling")}
    extra = {"simulation": config["simulation"]} if name == "sim" else dataset_config(name)
    return json.dumps({**extra, "features": features, "code": code("preprocess")},
                      sort_keys=True)


SEEDS = seeds(config)  # None: one seed, one job per model and fold


def spec_of(wildcards):
    """The model's training spec; a replicate's (<model>/seed-<seed>/<fold>) with its seed."""
    seed = int(wildcards.seed) if "seed" in wildcards.keys() else None
    return train_spec(config, wildcards.model, seed)


def spec_json(wildcards):
    return json.dumps(spec_of(wildcards), sort_keys=True)


def training_inputs(wildcards):
    """The features a train job reads: its fold's training and validation subjects, and its
    test subjects only for a model selected on them (`selection: test`, the papers' protocol)."""
    fold = fold_of(wildcards)
    chosen = fold.subjects_for_training()
    if spec_of(wildcards)["selection"] == "test":
        chosen = (*chosen, *fold.tests)
    return features_of(wildcards.dataset, chosen)


def raw_inputs(wildcards):
    """Simulated data: the subject's EEG header, BOLD run and ground-truth derivatives; real
    data: the manifest the fetch rule writes once the subject's files are verified."""
    ds = dataset(wildcards.dataset)
    if not ds.simulated:
        return {"manifest": f"{DATA}/manifests/{wildcards.dataset}/{wildcards.subject}.json"}
    root = Path(RAW) / wildcards.dataset
    eeg, bold = ds.run_paths(root, wildcards.subject, ds.runs[0])
    data, markers = reader("brainvision").companions(eeg)
    files = {"eeg": eeg, "eeg_data": data, "markers": markers, "bold": bold,
             **ds.truth_paths(root, wildcards.subject)}
    files["rois"], files["roi_names"] = ds.roi_files(root)
    return {k: str(v) for k, v in files.items()}


def has_sequence_model():
    return any(arch_kind(train_spec(config, m)["arch"]) == "sequence" for m in config["models"])


SYNTHESIS_NAME = r"[\w.-]+"  # letters of any script, digits, _ . -


def synthesis_jobs():
    """Config `synthesize` entries, each with its dataset, fold and output name filled in (a
    name from the recording's file name keeps its letters and digits, other characters become
    `_`)."""
    jobs = []
    for i, entry in enumerate(config["synthesize"]):
        ds = entry.get("dataset") or config["datasets"][0]
        fold = entry.get("fold") or fold_names(ds)[0]
        fold = fold if fold.startswith(("fold-", "split-")) else f"fold-{fold}"
        if fold not in dataset(ds).folds():
            raise WorkflowError(f"config synthesize: {fold} is not a fold of dataset {ds!r} "
                                f"({', '.join(dataset(ds).folds())})")
        stem = Path(entry["eeg"]).name.split(".")[0]
        name = entry.get("name") or re.sub(r"[^\w.-]", "_", f"{stem}_{entry['model']}_{fold}")
        if not re.fullmatch(SYNTHESIS_NAME, name):
            raise WorkflowError(f"config synthesize[{i}].name {name!r}: use letters, digits, "
                                "'_', '.' and '-' (it names the output file)")
        jobs.append({**entry, "dataset": ds, "fold": fold, "name": name})
    seen = {}
    for i, job in enumerate(jobs):
        key = (job["dataset"], job["name"])
        if key in seen:
            raise WorkflowError(
                f"config synthesize: entries {seen[key]} and {i} would both write "
                f"{RESULTS}/{job['dataset']}/synthesized/{job['name']}.nii.gz ("
                f"{jobs[seen[key]]['eeg']} and {job['eeg']}): give each a `name`")
        seen[key] = i
    return jobs


def synthesis_model(wildcards):
    """The model a synthesize entry uses: its fold's, of the run's first seed with `seeds`."""
    job = synthesis_job(wildcards)
    seed = SEEDS[0] if SEEDS else None
    return f"{RESULTS}/{job['dataset']}/{run_dir(job['model'], job['fold'], seed)}/model.pt"


def synthesis_options(wildcards):
    """The entry's options for `eeg2fmri synthesize`, each quoted for the shell."""
    job = synthesis_job(wildcards)
    return " ".join(f"--{key} {shlex.quote(str(job[key]))}"
                    for key in ("start", "marker", "seed", "format") if job.get(key) is not None)


def synthesis_inputs(wildcards):
    """The recording of a synthesize entry and every file it reads (a BrainVision header's data
    and marker files, an EEGLAB .fdt), so that replacing any of them reruns the job."""
    job = synthesis_job(wildcards)
    eeg = Path(job["eeg"])
    fmt = job.get("format") or format_by_extension(eeg)
    files = [eeg]
    if fmt in FORMATS:
        try:
            files += reader(fmt).companions(eeg)
        except InputError as e:
            raise WorkflowError(f"config synthesize: {e}") from None
    return [str(f) for f in files]


def synthesis_job(wildcards):
    for job in synthesis_jobs():
        if job["dataset"] == wildcards.dataset and job["name"] == wildcards.name:
            return job
    raise WorkflowError(f"no synthesize entry named {wildcards.name!r} for {wildcards.dataset}")


def synthesis_outputs():
    return [f"{RESULTS}/{j['dataset']}/synthesized/{j['name']}.nii.gz" for j in synthesis_jobs()]


def run_dir(model, fold, seed=None):
    """Where a model's fold (and seed, with several seeds) is trained and evaluated, relative
    to the dataset's results."""
    return f"{model}/{fold}" if seed is None else f"{model}/seed-{seed}/{fold}"


def fold_metrics(wildcards):
    return [f"{RESULTS}/{wildcards.dataset}/{run_dir(m, f, s)}/metrics.json"
            for m in config["models"] for f in fold_names(wildcards.dataset)
            for s in (SEEDS or [None])]


def fold_ceilings(wildcards):
    """Simulated data: each fold's ceiling (`rule ceiling`); nothing for real data."""
    if not dataset(wildcards.dataset).simulated:
        return []
    return [f"{RESULTS}/{wildcards.dataset}/ceiling/{f}/ceiling.json"
            for f in fold_names(wildcards.dataset)]


def fold_maps(wildcards):
    return [str(Path(m).with_name("voxel_corr.nii.gz")) for m in fold_metrics(wildcards)]
