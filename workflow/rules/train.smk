# One model on one fold (leave-one-subject-out, or a dataset's fixed split). Inputs are the features of the fold's training
# and validation subjects only: the test subjects' files are not even given to the job.
# A killed job resumes from {fold}/checkpoint/last.pt (not a declared output) when rerun.


rule train:
    input:
        features=training_inputs,
    output:
        model=f"{RESULTS}/{{dataset}}/{{model}}/{{fold}}/model.pt",
        log_csv=f"{RESULTS}/{{dataset}}/{{model}}/{{fold}}/train_log.csv",
    params:
        code=code("train"),
        spec=spec_json,
        subjects=lambda w: subjects(w.dataset),
        splits=lambda w: json.dumps(dataset(w.dataset).splits),
        device=config["device"],
        features=lambda w: f"{FEATURES}/{w.dataset}",
        expect=lambda w: preprocess_settings(w.dataset),
    threads: config["threads"]
    resources:
        gpu=1,
        mem_mb=lambda w, attempt: 4000 * attempt,  # a retry (--retries) gets more
        runtime=lambda w, attempt: 120 * attempt,  # minutes
    log:
        f"{RESULTS}/logs/{{dataset}}/train/{{model}}/{{fold}}.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/{{model}}/{{fold}}/train.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri train --features {params.features:q}"
        " --subjects {params.subjects:q} --fold {wildcards.fold} --splits {params.splits:q}"
        " --spec {params.spec:q} --expect-features {params.expect:q}"
        " --out \"$(dirname {output.model:q})\" --device {params.device:q} --threads {threads}"
        " --no-progress 2>&1 | tee -a {log:q} | {{ grep --line-buffered ' epoch ' || true; }}"  # epochs on the terminal


# With several seeds (config `seeds`): one job per model, fold and seed.
use rule train as train_seeded with:
    output:
        model=f"{RESULTS}/{{dataset}}/{{model}}/seed-{{seed}}/{{fold}}/model.pt",
        log_csv=f"{RESULTS}/{{dataset}}/{{model}}/seed-{{seed}}/{{fold}}/train_log.csv",
    log:
        f"{RESULTS}/logs/{{dataset}}/train/{{model}}/seed-{{seed}}/{{fold}}.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/{{model}}/seed-{{seed}}/{{fold}}/train.benchmark.tsv"
