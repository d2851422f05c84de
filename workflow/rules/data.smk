# Phase 1: dataset curation and the few-shot train/test split.


rule curate:
    input:
        code("data"),
    output:
        directory("data/curated/{dataset}"),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        seed=config["seed"],
    shell:
        "fewgan curate --dataset {wildcards.dataset} --out {output}"


rule split:
    input:
        code("data"),
        curated="data/curated/{dataset}",
    output:
        directory("data/splits/{dataset}"),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        seed=config["seed"],
    shell:
        "fewgan split --dataset {wildcards.dataset} --curated {input.curated} --out {output}"
