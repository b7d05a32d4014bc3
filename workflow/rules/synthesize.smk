# fMRI synthesized from EEG-only recordings (config `synthesize`): one job per recording, with a
# model this workflow trained (results/<dataset>/<model>/<fold>/model.pt).


rule synthesize:
    input:
        model=lambda w: f"{RESULTS}/{w.dataset}/{synthesis_job(w)['model']}/"
        f"{synthesis_job(w)['fold']}/model.pt",
        eeg=synthesis_inputs,
    output:
        volumes=f"{RESULTS}/{{dataset}}/synthesized/{{name}}.nii.gz",
        sidecar=f"{RESULTS}/{{dataset}}/synthesized/{{name}}.json",
    params:
        code=code("synthesize"),
        options=lambda w: " ".join(
            f"--{key} {synthesis_job(w)[key]}" for key in ("start", "marker", "seed", "format")
            if synthesis_job(w).get(key) is not None),
        device=config["device"],
    wildcard_constraints:
        name=r"[A-Za-z0-9_.-]+",
    threads: config["threads"]
    resources:
        gpu=1,
        mem_mb=lambda w, attempt: 4000 * attempt,
        runtime=lambda w, attempt: 60 * attempt,  # minutes
    log:
        f"{RESULTS}/logs/{{dataset}}/synthesize/{{name}}.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/synthesized/{{name}}.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri synthesize --model {input.model} --eeg {input.eeg[0]} --out {output.volumes}"
        " {params.options} --device {params.device} --threads {threads} --no-progress"
        " > {log} 2>&1"
