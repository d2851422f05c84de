# Phase 1: dataset curation and the few-shot train/test split.


rule curate:
    log:
        "logs/curate/{dataset}.log",
    conda:
        "../envs/fewgan.yaml"
    input:
        code("data"),
    output:
        directory("data/curated/{dataset}"),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        seed=config["seed"],
    shell:
        "fewgan curate --dataset {wildcards.dataset} --out {output} 2>&1 | tee {log}"


rule split:
    log:
        "logs/split/{dataset}.log",
    conda:
        "../envs/fewgan.yaml"
    input:
        code("data"),
        curated="data/curated/{dataset}",
    output:
        directory("data/splits/{dataset}"),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        seed=config["seed"],
    shell:
        "fewgan split --dataset {wildcards.dataset} --curated {input.curated} --out {output} 2>&1 | tee {log}"
