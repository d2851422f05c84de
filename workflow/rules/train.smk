# Phase 2: training, one job per dataset x model (resumable: state under work/).


rule train:
    log:
        "logs/train/{dataset}/{model}.log",
    conda:
        "../envs/fewgan.yaml"
    input:
        code("train"),
        code("models"),
        curated="data/curated/{dataset}",
        split="data/splits/{dataset}",
    output:
        directory("runs/{dataset}/{model}/train"),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        model=lambda w: config["models"][w.model],
        train=config["train"],
        seed=config["seed"],
    threads: THREADS["train"]
    resources:
        gpu=lambda w: 1 if config["device"].startswith("cuda") else 0,
    shell:
        "fewgan train --dataset {wildcards.dataset} --model {wildcards.model} --threads {threads}"
        " --curated {input.curated} --split {input.split} --out {output} 2>&1 | tee {log}"
