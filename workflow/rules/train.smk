# Phase 2: training, one job per dataset x model (resumable: state under work/).


rule train:
    input: **stage_input("train")
    output: **stage_output("train")
    params: **stage_params("train")
    log: stage_log("train")
    threads: stage_threads("train")
    resources: **stage_resources("train")
    conda: "../envs/fewgan.yaml"
    shell: stage_shell("train")
