#!/bin/sh
# Stand-in for TFLite's benchmark_model in the push/run path of tests (NOT a real benchmark).
# It parses the real flags, refuses a missing --graph like the real tool, records its argv in
# ./last-args.txt next to itself, and prints (to stderr, as TFLITE_LOG does) the real output of
# linux_arm64_mobilenet_quant_cpu.txt with the graph, thread count and run counts it was given.
# Like the real tool it runs for at least --min_secs (whole seconds, in 1 s sleeps), so a test
# can catch it mid-run. Asked for a delegate it prints what the real tool and TFLite print when
# one applies (GPU: the whole graph; an external delegate .so that exists: 20 of 31 nodes in
# 3 partitions; one that does not: the load failure) or does not (NNAPI: takes nothing), and,
# like the real tool, still times the model on the CPU in every case.
graph=; threads=-1; runs=50; warmup=1; xnn=; prof=false; mins=0; gpu=false; nnapi=false; ext=
for a in "$@"; do
  case "$a" in
    --graph=*) graph=${a#--graph=} ;;
    --num_threads=*) threads=${a#--num_threads=} ;;
    --num_runs=*) runs=${a#--num_runs=} ;;
    --warmup_runs=*) warmup=${a#--warmup_runs=} ;;
    --use_xnnpack=*) xnn=${a#--use_xnnpack=} ;;
    --enable_op_profiling=*) prof=${a#--enable_op_profiling=} ;;
    --min_secs=*) mins=${a#--min_secs=} ;;
    --use_gpu=*) gpu=${a#--use_gpu=} ;;
    --use_nnapi=*) nnapi=${a#--use_nnapi=} ;;
    --external_delegate_path=*) ext=${a#--external_delegate_path=} ;;
    --help) echo "usage: benchmark_model --graph=MODEL [flags]"; exit 0 ;;
  esac
done
here=$(dirname "$0")
for a in "$@"; do printf '%s\n' "$a"; done > "$here/last-args.txt"
{
echo "INFO: STARTING!"
echo "INFO: Log parameter values verbosely: [0]"
echo "INFO: Min num runs: [$runs]"
echo "INFO: Num threads: [$threads]"
echo "INFO: Graph: [$graph]"
echo "INFO: #threads used for CPU inference: [$threads]"
[ "$xnn" = false ] && echo "INFO: Use xnnpack: [0]"
[ "$prof" = true ] && echo "INFO: Enable op profiling: [1]"
if [ ! -r "$graph" ]; then
  echo "ERROR: Could not open '$graph'."
  echo "ERROR: Failed to mmap model $graph"
  exit 1
fi
if [ "$(wc -c < "$graph")" -lt 8 ]; then
  echo "ERROR: The model is not a valid Flatbuffer buffer"
  echo "ERROR: Failed to mmap model $graph"
  exit 1
fi
echo "INFO: Loaded model $graph"
i=0
while [ "$i" -lt "${mins%%.*}" ]; do sleep 1; i=$((i + 1)); done
[ "$xnn" = false ] || echo "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
if [ "$gpu" = true ]; then
  echo "INFO: Created TensorFlow Lite delegate for GPU."
  echo "INFO: Replacing 31 out of 31 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 partitions for the whole graph."
  echo "INFO: Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate."
fi
if [ "$nnapi" = true ]; then
  echo "INFO: Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate."
fi
if [ -n "$ext" ]; then
  if [ -r "$ext" ]; then
    echo "INFO: EXTERNAL delegate created."
    echo "INFO: Replacing 20 out of 31 node(s) with delegate (ExternalDelegate) node, yielding 3 partitions for the whole graph."
    echo "INFO: Explicitly applied EXTERNAL delegate, and the model graph will be partially executed by the delegate w/ 3 delegate kernels."
  else
    echo "ERROR: Could not load $ext: cannot open shared object file: No such file or directory"
    echo "WARNING: Failed to create EXTERNAL delegate."
  fi
fi
echo "INFO: The input model file size (MB): 4.2761"
echo "INFO: Initialized session in 87.639ms."
echo "INFO: Running benchmark for at least $warmup iterations and at least 0.5 seconds but terminate if exceeding 150 seconds."
echo "INFO: count=$warmup first=106436 curr=105929 min=105929 max=106436 avg=106065 std=193 p5=105929 median=105948 p95=106436"
echo ""
echo "INFO: Running benchmark for at least $runs iterations and at least 1 seconds but terminate if exceeding 150 seconds."
echo "INFO: count=$runs first=106022 curr=105780 min=105416 max=106528 avg=105784 std=260 p5=105485 median=105718 p95=106281"
echo ""
echo "INFO: Inference timings in us: Init: 87639, First inference: 106436, Warmup (avg): 106065, Inference (avg): 105784"
echo "INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion."
echo "INFO: Memory footprint delta from the start of the tool (MB): init=14.4414 overall=14.8164"
if [ "$prof" = true ]; then
  echo "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:"
  echo "============================== Summary by node type =============================="
  printf '\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %%]\t    [cdf %%]\t  [mem KB]\t[times called]\n'
  printf '\t                 CONV_2D\t       15\t     1.406\t    89.270%%\t    89.270%%\t     0.000\t        0\n'
  printf '\t       DEPTHWISE_CONV_2D\t       13\t     0.169\t    10.730%%\t   100.000%%\t     0.000\t        0\n'
  echo ""
fi
} >&2
exit 0
