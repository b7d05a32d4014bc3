# Per subject: align EEG to volumes by scanner markers, |FFT| of each fs*TR window, volumes
# scaled to [0, 1]; written to the features store.


def raw_inputs(wildcards):
    ds = dataset(wildcards.dataset)
    root = Path(RAW) / wildcards.dataset
    return {"eeg": str(ds.eeg_path(root, wildcards.subject)),
            "bold": str(ds.bold_path(root, wildcards.subject))}


rule preprocess:
    input:
        unpack(raw_inputs),
        code=code("data", "preprocess"),
    output:
        multiext(f"{FEATURES}/{{dataset}}/{{subject}}/", *FEATURE_FILES),
    params:
        settings=lambda w: preprocess_settings(),
    log:
        "logs/{dataset}/preprocess/{subject}.log",
    benchmark:
        "logs/{dataset}/preprocess/{subject}.benchmark.tsv"
    shell:
        "eeg2fmri preprocess --dataset {wildcards.dataset} --raw {RAW}/{wildcards.dataset}"
        " --subject {wildcards.subject} --out {FEATURES}/{wildcards.dataset}/{wildcards.subject}"
        " --config {params.settings:q} > {log} 2>&1"
