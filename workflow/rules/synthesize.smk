# fMRI synthesized from EEG-only recordings (config `synthesize`): one job per recording, with a
# model this workflow trained (results/<dataset>/<model>/<fold>/model.pt).


rule synthesize:
    input:
        model=synthesis_model,
        eeg=synthesis_inputs,
    output:
        volumes=f"{RESULTS}/{{dataset}}/synthesized/{{name}}.nii.gz",
        sidecar=f"{RESULTS}/{{dataset}}/synthesized/{{name}}.json",
    params:
        code=code("synthesize"),
        options=synthesis_options,
        eeg=lambda w, input: input.eeg[0],
        device=config["device"],
    wildcard_constraints:
        name=SYNTHESIS_NAME,
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
        "eeg2fmri synthesize --model {input.model:q} --eeg {params.eeg:q}"
        " --out {output.volumes:q} {params.options} --device {params.device:q}"
        " --threads {threads} --no-progress > {log:q} 2>&1"
