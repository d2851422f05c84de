# Phase 6: the benchmark report over every dataset x model of the experiment.


rule report:
    input: **stage_input("report")
    output: **stage_output("report")
    params: **stage_params("report")
    log: stage_log("report")
    threads: stage_threads("report")
    conda: "../envs/fewgan.yaml"
    shell: stage_shell("report")
