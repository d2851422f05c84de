# Phase 6: the benchmark report over every dataset x model of the experiment.


rule all:
    input:
        "reports/benchmark",
    default_target: True


rule report:
    log:
        "logs/report.log",
    conda:
        "../envs/fewgan.yaml"
    input:
        code("report"),
        curated=expand("data/curated/{dataset}", dataset=DATASETS),
        splits=expand("data/splits/{dataset}", dataset=DATASETS),
        train=expand("runs/{dataset}/{model}/train", dataset=DATASETS, model=MODELS),
        scores=expand("runs/{dataset}/{model}/score/scores.json", dataset=DATASETS, model=MODELS),
        best=expand("runs/{dataset}/{model}/select/best.json", dataset=DATASETS, model=MODELS),
        inversion=expand("runs/{dataset}/{model}/invert/inversion.json", dataset=DATASETS, model=MODELS),
        metrics=expand("runs/{dataset}/{model}/evaluate/metrics.json", dataset=DATASETS, model=MODELS),
    output:
        directory("reports/benchmark"),
    params:
        report=config["report"],
        profile=config["profile"],
    shell:
        "fewgan report --runs runs --data data --out {output} 2>&1 | tee {log}"
