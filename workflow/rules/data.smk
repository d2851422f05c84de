# Phase 1: dataset curation and the few-shot train/test split (stage table: src/fewgan/stages.py).


rule curate:
    input: **stage_input("curate")
    output: **stage_output("curate")
    params: **stage_params("curate")
    log: stage_log("curate")
    threads: stage_threads("curate")
    conda: "../envs/fewgan.yaml"
    shell: stage_shell("curate")


rule split:
    input: **stage_input("split")
    output: **stage_output("split")
    params: **stage_params("split")
    log: stage_log("split")
    threads: stage_threads("split")
    conda: "../envs/fewgan.yaml"
    shell: stage_shell("split")
