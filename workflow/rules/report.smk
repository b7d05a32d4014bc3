# Per dataset: tables (mean +- std across folds, paired differences against the mean-volume
# baseline, sequence tasks) and figures, all included in `snakemake --report report.html`.



rule aggregate:
    input:
        metrics=fold_metrics,
        maps=fold_maps,
        ceiling=fold_ceilings,
        # what this summary is made of (models, seeds, folds, settings): another experiment
        # sharing results_root rewrites it, and the summary is made again for it
        settings=lambda w: settings_file(
            f"{RESULTS}/{w.dataset}/.settings/aggregate.json",
            {"metrics": fold_metrics(w), "ceilings": fold_ceilings(w),
             "specs": {m: train_spec(config, m) for m in config["models"]}, "seeds": SEEDS,
             "features": preprocess_settings(w.dataset), "code": code("aggregate")}),
    output:
        table=report(f"{RESULTS}/{{dataset}}/summary/summary.md",
                     caption="../report/summary.rst", category="{dataset}", labels={"figure": "table"}),
        csv=f"{RESULTS}/{{dataset}}/summary/summary.csv",
        per_fold=f"{RESULTS}/{{dataset}}/summary/per_fold.csv",
        paired=f"{RESULTS}/{{dataset}}/summary/paired_vs_baseline.csv",
        montage=report(f"{RESULTS}/{{dataset}}/summary/montage.png",
                       caption="../report/montage.rst", category="{dataset}", labels={"figure": "montage"}),
        timecourse=report(f"{RESULTS}/{{dataset}}/summary/timecourse.png",
                          caption="../report/timecourse.rst", category="{dataset}",
                          labels={"figure": "time courses"}),
        strips=report(f"{RESULTS}/{{dataset}}/summary/metrics.png",
                      caption="../report/metrics.rst", category="{dataset}", labels={"figure": "metrics"}),
        curves=report(f"{RESULTS}/{{dataset}}/summary/curves.png",
                      caption="../report/curves.rst", category="{dataset}", labels={"figure": "curves"}),
        tasks=f"{RESULTS}/{{dataset}}/summary/tasks.csv",
        rois=f"{RESULTS}/{{dataset}}/summary/roi.csv",
        roi_figure=report(f"{RESULTS}/{{dataset}}/summary/roi.png", caption="../report/roi.rst",
                          category="{dataset}", labels={"figure": "ROI time series"}),
        maps=report(f"{RESULTS}/{{dataset}}/summary/voxel_corr_maps.png",
                    caption="../report/voxel_corr.rst", category="{dataset}",
                    labels={"figure": "voxel corr. maps"}),
        # with a sequence model: each task's time courses beside linear interpolation
        **({"task_figure": report(f"{RESULTS}/{{dataset}}/summary/tasks.png",
                                  caption="../report/tasks.rst", category="{dataset}",
                                  labels={"figure": "tasks"})} if has_sequence_model() else {}),
    params:
        code=code("aggregate"),
        features=lambda w: f"{FEATURES}/{w.dataset}",
        specs=json.dumps({m: train_spec(config, m) for m in config["models"]}, sort_keys=True),
        seeds=json.dumps(SEEDS or []),
        ceiling=lambda w: json.dumps({"features": json.loads(preprocess_settings(w.dataset)),
                                      "context": config["features"]["context"]}),
    log:
        f"{RESULTS}/logs/{{dataset}}/aggregate.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/summary/aggregate.benchmark.tsv"
    conda:
        ENV
    shell:
        "eeg2fmri aggregate --metrics {input.metrics:q} --features {params.features:q}"
        " --out \"$(dirname {output.table:q})\" --expect-specs {params.specs:q}"
        " --expect-seeds {params.seeds:q} --ceiling {input.ceiling:q}"
        " --expect-ceiling {params.ceiling:q} --maps > {log:q} 2>&1"
