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
    input:
        code("data"),
    params:
        settings=lambda w: json.dumps(config["simulation"], sort_keys=True),
        out=lambda w, output: str(Path(output.description).parent),
    log:
        "logs/sim/simulate.log",
    benchmark:
        "logs/sim/simulate.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri simulate --out {params.out} --settings {params.settings:q} > {log} 2>&1"
