# Phases 3-5: score every snapshot, select the lowest FID, invert test images, evaluate.


rule score:
    log:
        "logs/score/{dataset}/{model}.log",
    conda:
        "../envs/fewgan.yaml"
    input:
        code("metrics"),
        curated="data/curated/{dataset}",
        split="data/splits/{dataset}",
        train="runs/{dataset}/{model}/train",
    output:
        csv="runs/{dataset}/{model}/score/scores.csv",
        json="runs/{dataset}/{model}/score/scores.json",
        curve="runs/{dataset}/{model}/score/fid_curve.png",
        stage="runs/{dataset}/{model}/score/stage.json",
    params:
        evaluation=config["evaluation"],
    threads: THREADS["score"]
    shell:
        "fewgan score --dataset {wildcards.dataset} --model {wildcards.model} --threads {threads}"
        " --curated {input.curated} --split {input.split} --train-dir {input.train}"
        " --out runs/{wildcards.dataset}/{wildcards.model}/score 2>&1 | tee {log}"


rule select:
    log:
        "logs/select/{dataset}/{model}.log",
    conda:
        "../envs/fewgan.yaml"
    input:
        code("metrics"),
        scores="runs/{dataset}/{model}/score/scores.csv",
        train="runs/{dataset}/{model}/train",
    output:
        best="runs/{dataset}/{model}/select/best.json",
        generator="runs/{dataset}/{model}/select/generator.pt",
        stage="runs/{dataset}/{model}/select/stage.json",
    params:
        evaluation=config["evaluation"],
    shell:
        "fewgan select --dataset {wildcards.dataset} --model {wildcards.model}"
        " --scores runs/{wildcards.dataset}/{wildcards.model}/score --train-dir {input.train}"
        " --out runs/{wildcards.dataset}/{wildcards.model}/select 2>&1 | tee {log}"


rule invert:
    log:
        "logs/invert/{dataset}/{model}.log",
    conda:
        "../envs/fewgan.yaml"
    input:
        code("invert"),
        curated="data/curated/{dataset}",
        split="data/splits/{dataset}",
        train="runs/{dataset}/{model}/train",
    output:
        csv="runs/{dataset}/{model}/invert/inversion.csv",
        json="runs/{dataset}/{model}/invert/inversion.json",
        grid="runs/{dataset}/{model}/invert/reconstructions.png",
        stage="runs/{dataset}/{model}/invert/stage.json",
    params:
        invert=config["invert"],
    threads: THREADS["invert"]
    shell:
        "fewgan invert --dataset {wildcards.dataset} --model {wildcards.model} --threads {threads}"
        " --curated {input.curated} --split {input.split} --train-dir {input.train}"
        " --out runs/{wildcards.dataset}/{wildcards.model}/invert 2>&1 | tee {log}"


rule evaluate:
    log:
        "logs/evaluate/{dataset}/{model}.log",
    conda:
        "../envs/fewgan.yaml"
    input:
        code("metrics"),
        curated="data/curated/{dataset}",
        split="data/splits/{dataset}",
        generator="runs/{dataset}/{model}/select/generator.pt",
    output:
        metrics="runs/{dataset}/{model}/evaluate/metrics.json",
        samples="runs/{dataset}/{model}/evaluate/samples.png",
        stage="runs/{dataset}/{model}/evaluate/stage.json",
    params:
        evaluation=config["evaluation"],
    threads: THREADS["evaluate"]
    shell:
        "fewgan evaluate --dataset {wildcards.dataset} --model {wildcards.model} --threads {threads}"
        " --curated {input.curated} --split {input.split}"
        " --select runs/{wildcards.dataset}/{wildcards.model}/select"
        " --out runs/{wildcards.dataset}/{wildcards.model}/evaluate 2>&1 | tee {log}"
