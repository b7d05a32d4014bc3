# Raw data: the simulated dataset (real datasets' download rules plug in here).


rule simulate:
    output:
        eeg=expand(f"{RAW}/sim/{{subject}}/eeg/{{subject}}_task-rest_eeg.{{ext}}",
                   subject=subjects("sim"), ext=["vhdr", "vmrk", "eeg"]),
        bold=expand(f"{RAW}/sim/{{subject}}/func/{{subject}}_task-rest_bold.nii.gz",
                    subject=subjects("sim")),
        truth=[str(p) for s in subjects("sim")
               for p in dataset("sim").truth_paths(Path(RAW) / "sim", s).values()],
        description=f"{RAW}/sim/dataset_description.json",
        rois=[str(p) for p in dataset("sim").roi_files(Path(RAW) / "sim")],
    params:
        code=code("simulate"),
        settings=lambda w: json.dumps(config["simulation"], sort_keys=True),
        out=lambda w, output: str(Path(output.description).parent),
    log:
        f"{DATA}/logs/sim/simulate.log",
    benchmark:
        f"{DATA}/logs/sim/simulate.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri simulate --out {params.out:q} --settings {params.settings:q} > {log:q} 2>&1"


# Real datasets: one job per subject downloads what that subject needs (or finds it in the local
# copy named in config `raw_roots`), verifies it and records every file's SHA-256.
rule fetch:
    input:
        # a local copy's files (and their sizes and times): replacing one reruns the fetch,
        # which records it anew, and so what was made from it
        files=lambda w: local_files(w.dataset, w.subject),
        states=local_states,
    output:
        manifest=f"{DATA}/manifests/{{dataset}}/{{subject}}.json",
    params:
        code=code("fetch"),
        raw=lambda w: raw_root(w.dataset),
        urls=json.dumps(config["download_urls"], sort_keys=True),
        local=lambda w: "--local" if is_local(w.dataset) else "",
        strict=STRICT,
        config=lambda w: json.dumps(dataset_config(w.dataset), sort_keys=True),
    wildcard_constraints:
        dataset=r"(?!sim$)[a-z0-9]+",
    resources:
        downloads=1,  # limit parallel downloads with --resources downloads=N
    log:
        f"{DATA}/logs/{{dataset}}/fetch/{{subject}}.log",
    benchmark:
        f"{DATA}/logs/{{dataset}}/fetch/{{subject}}.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri fetch --dataset {wildcards.dataset} --subject {wildcards.subject}"
        " --raw {params.raw:q} --manifest {output.manifest:q} --urls {params.urls:q}"
        " {params.local} --config {params.config:q} {params.strict} > {log:q} 2>&1"


# The participants index of a dataset whose subjects are read from it (CN-EPFL).
checkpoint index:
    output:
        f"{RAW}/{{dataset}}/participants.tsv",
    params:
        urls=json.dumps(config["download_urls"], sort_keys=True),
        strict=STRICT,
    log:
        f"{DATA}/logs/{{dataset}}/fetch/index.log",
    conda:
        ENV
    shell:
        "eeg2fmri fetch --index --dataset {wildcards.dataset} --raw \"$(dirname {output:q})\""
        " --urls {params.urls:q} {params.strict} > {log:q} 2>&1"


# What preprocessing will make of a dataset (eeg2fmri inspect): one row per subject and run, every
# problem in words. `snakemake results/<dataset>/inspect/inspect.tsv`; run it before training.
rule inspect:
    output:
        table=f"{RESULTS}/{{dataset}}/inspect/inspect.tsv",
        summary=f"{RESULTS}/{{dataset}}/inspect/inspect.md",
    input:
        files=lambda w: [f"{RAW}/sim/dataset_description.json"] if w.dataset == "sim" else
        [f for s in subjects(w.dataset) for f in local_files(w.dataset, s)] if is_local(w.dataset)
        else expand(f"{DATA}/manifests/{w.dataset}/{{subject}}.json", subject=subjects(w.dataset)),
        settings=lambda w: settings_file(f"{RESULTS}/{w.dataset}/.settings/inspect.json",
                                         [raw_root(w.dataset), preprocess_settings(w.dataset)]),
    params:
        code=code("inspect"),
        raw=lambda w: raw_root(w.dataset),
        config=lambda w: preprocess_settings(w.dataset),
    log:
        f"{RESULTS}/logs/{{dataset}}/inspect.log",
    conda:
        ENV
    shell:
        "eeg2fmri inspect --dataset {wildcards.dataset} --raw {params.raw:q}"
        " --config {params.config:q} --out {output.table:q} --table-only > {log:q} 2>&1"
