# Per subject: align EEG to volumes by scanner markers, |FFT| of each fs*TR window, volumes
# scaled to [0, 1]; written to the features store.



rule preprocess:
    input:
        unpack(raw_inputs),
        code=code("data", "preprocess"),
    output:
        multiext(f"{FEATURES}/{{dataset}}/{{subject}}/", *FEATURE_FILES),
    params:
        settings=lambda w: preprocess_settings(),
        raw=lambda w: f"{RAW}/{w.dataset}",
        out=lambda w: f"{FEATURES}/{w.dataset}/{w.subject}",
    log:
        "logs/{dataset}/preprocess/{subject}.log",
    benchmark:
        "logs/{dataset}/preprocess/{subject}.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri preprocess --dataset {wildcards.dataset} --raw {params.raw}"
        " --subject {wildcards.subject} --out {params.out} --config {params.settings:q}"
        " > {log} 2>&1"
