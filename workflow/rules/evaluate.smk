# Phases 3-5: score every snapshot, select one, invert held-out test images, evaluate.


rule score:
    input: **stage_input("score")
    output: **stage_output("score")
    params: **stage_params("score")
    log: stage_log("score")
    threads: stage_threads("score")
    resources: **stage_resources("score")
    conda: "../envs/fewgan.yaml"
    shell: stage_shell("score")


rule select:
    input: **stage_input("select")
    output: **stage_output("select")
    params: **stage_params("select")
    log: stage_log("select")
    threads: stage_threads("select")
    conda: "../envs/fewgan.yaml"
    shell: stage_shell("select")


rule invert:
    input: **stage_input("invert")
    output: **stage_output("invert")
    params: **stage_params("invert")
    log: stage_log("invert")
    threads: stage_threads("invert")
    resources: **stage_resources("invert")
    conda: "../envs/fewgan.yaml"
    shell: stage_shell("invert")


rule evaluate:
    input: **stage_input("evaluate")
    output: **stage_output("evaluate")
    params: **stage_params("evaluate")
    log: stage_log("evaluate")
    threads: stage_threads("evaluate")
    resources: **stage_resources("evaluate")
    conda: "../envs/fewgan.yaml"
    shell: stage_shell("evaluate")
