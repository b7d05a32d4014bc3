# Score a trained fold on its test subject: the only rule that reads the test subject.


rule evaluate:
    input:
        model=rules.train.output.model,
        features=lambda w: features_of(w.dataset, [fold_of(w).test]),
        code=code("evaluation", "models", "training", "preprocess"),
    output:
        metrics=f"{RESULTS}/{{dataset}}/{{model}}/{{fold}}/metrics.json",
        predictions=f"{RESULTS}/{{dataset}}/{{model}}/{{fold}}/predictions.nii.gz",
    params:
        test_dir=lambda w: f"{FEATURES}/{w.dataset}/{fold_of(w).test}",
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=1,
        mem_mb=lambda w, attempt: 4000 * attempt,  # a retry (--retries) gets more
        runtime=lambda w, attempt: 30 * attempt,  # minutes
    log:
        f"logs/{{dataset}}/evaluate/{{model}}/{{fold}}.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/{{model}}/{{fold}}/evaluate.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri evaluate --model {input.model} --test-features {params.test_dir}"
        " --metrics {output.metrics} --predictions {output.predictions}"
        " --device {params.device} --threads {threads} > {log} 2>&1"
