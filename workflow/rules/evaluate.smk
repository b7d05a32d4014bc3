# Score a trained fold on its test subject(s): the only rule that reads them.


rule evaluate:
    input:
        model=rules.train.output.model,
        features=lambda w: features_of(w.dataset, fold_of(w).tests),
    output:
        metrics=f"{RESULTS}/{{dataset}}/{{model}}/{{fold}}/metrics.json",
        predictions=f"{RESULTS}/{{dataset}}/{{model}}/{{fold}}/predictions.nii.gz",
        maps=f"{RESULTS}/{{dataset}}/{{model}}/{{fold}}/voxel_corr.nii.gz",
    params:
        code=code("evaluate"),
        test_dirs=lambda w: [f"{FEATURES}/{w.dataset}/{s}" for s in fold_of(w).tests],
        device=config["device"],
        expect=lambda w: preprocess_settings(w.dataset),
        spec=spec_json,
    threads: config["threads"]
    resources:
        gpu=1,
        mem_mb=lambda w, attempt: 4000 * attempt,  # a retry (--retries) gets more
        runtime=lambda w, attempt: 30 * attempt,  # minutes
    log:
        f"{RESULTS}/logs/{{dataset}}/evaluate/{{model}}/{{fold}}.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/{{model}}/{{fold}}/evaluate.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri evaluate --model {input.model:q} --test-features {params.test_dirs:q}"
        " --metrics {output.metrics:q} --predictions {output.predictions:q}"
        " --maps {output.maps:q} --expect-features {params.expect:q}"
        " --expect-spec {params.spec:q} --device {params.device:q} --threads {threads}"
        " > {log:q} 2>&1"


use rule evaluate as evaluate_seeded with:
    input:
        model=rules.train_seeded.output.model,
        features=lambda w: features_of(w.dataset, fold_of(w).tests),
    output:
        metrics=f"{RESULTS}/{{dataset}}/{{model}}/seed-{{seed}}/{{fold}}/metrics.json",
        predictions=f"{RESULTS}/{{dataset}}/{{model}}/seed-{{seed}}/{{fold}}/predictions.nii.gz",
        maps=f"{RESULTS}/{{dataset}}/{{model}}/seed-{{seed}}/{{fold}}/voxel_corr.nii.gz",
    log:
        f"{RESULTS}/logs/{{dataset}}/evaluate/{{model}}/seed-{{seed}}/{{fold}}.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/{{model}}/seed-{{seed}}/{{fold}}/evaluate.benchmark.tsv"


# Simulated data: the noise-free BOLD scored as a prediction of the measured BOLD, once per fold
# (the summary's ceiling row, ROI r and map).
rule ceiling:
    input:
        features=lambda w: features_of(w.dataset, fold_of(w).tests),
    output:
        metrics=f"{RESULTS}/{{dataset}}/ceiling/{{fold}}/ceiling.json",
        maps=f"{RESULTS}/{{dataset}}/ceiling/{{fold}}/ceiling_voxel_corr.nii.gz",
    params:
        code=code("ceiling"),
        test_dirs=lambda w: [f"{FEATURES}/{w.dataset}/{s}" for s in fold_of(w).tests],
        expect=lambda w: preprocess_settings(w.dataset),
        context=config["features"]["context"],
    log:
        f"{RESULTS}/logs/{{dataset}}/ceiling/{{fold}}.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/ceiling/{{fold}}/ceiling.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri ceiling --test-features {params.test_dirs:q} --fold {wildcards.fold}"
        " --context {params.context} --out {output.metrics:q} --maps {output.maps:q}"
        " --expect-features {params.expect:q} > {log:q} 2>&1"
