# Per subject: align EEG to volumes (scanner markers or the dataset's fixed offset), |FFT| of each
# fs*TR window, volumes on the dataset's grid scaled to [0, 1]; all runs into one features store.



rule preprocess:
    input:
        unpack(raw_inputs),
    output:
        multiext(f"{FEATURES}/{{dataset}}/{{subject}}/", *FEATURE_FILES),
    params:
        code=code("preprocess"),
        settings=lambda w: preprocess_settings(w.dataset),
        raw=lambda w: raw_root(w.dataset),
        manifest=lambda w, input: ["--manifest", input.manifest] if "manifest" in input.keys()
        else [],
        out=lambda w: f"{FEATURES}/{w.dataset}/{w.subject}",
    log:
        f"{DATA}/logs/{{dataset}}/preprocess/{{subject}}.log",
    benchmark:
        f"{DATA}/logs/{{dataset}}/preprocess/{{subject}}.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri preprocess --dataset {wildcards.dataset} --raw {params.raw:q}"
        " --subject {wildcards.subject} --out {params.out:q} --config {params.settings:q}"
        " {params.manifest:q} > {log:q} 2>&1"
