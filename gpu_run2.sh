# device call 2: the 2-hour CPU checkpoints on the full Moving MNIST test sets, then the H100 run continued
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 WANDB_MODE=disabled
B=/tmp/bundle; mkdir -p $B; S=$(date +%s)
LOG="--trainer.logger lightning.pytorch.loggers.CSVLogger --trainer.logger.init_args.save_dir . --trainer.logger.init_args.name csv"
COMMON="--trainer.accelerator gpu $LOG --data.init_args.num_workers 8 --data.init_args.cache_dir /tmp/cache --trainer.enable_progress_bar false"
for m in dfn conv_lstm; do
  extra=""; [ $m = conv_lstm ] && extra="--config configs/baselines/conv_lstm.yaml"
  timeout 100 python3 -m dfn test --config configs/moving_mnist.yaml $extra --run_dir /tmp/test_cpu2h_$m --ckpt_path runs/cpu2h_$m/checkpoints/last.ckpt $COMMON --data.init_args.batch_size 250 > $B/test_cpu2h_$m.log 2>&1
  tail -4 $B/test_cpu2h_$m.log; cp /tmp/test_cpu2h_$m/test_results_step*.json $B/test_cpu2h_$m.json; cp /tmp/test_cpu2h_$m/figures/test_strips*.png $B/test_cpu2h_${m}_strips.png
  echo "test $m $(( $(date +%s)-S ))s"
done
timeout 170 python3 -m dfn fit --config configs/moving_mnist.yaml --run_dir /tmp/gpu_dfn --ckpt_path runs/gpu_dfn/checkpoints/last.ckpt --trainer.max_time 00:00:06:15 $COMMON > $B/fit2.log 2>&1; tail -2 $B/fit2.log
echo "fit $(( $(date +%s)-S ))s"
cp /tmp/gpu_dfn/checkpoints/last.ckpt $OUT/last.ckpt
timeout 75 python3 -m dfn test --config configs/moving_mnist.yaml --run_dir /tmp/gpu_dfn --ckpt_path /tmp/gpu_dfn/checkpoints/last.ckpt $COMMON --data.init_args.batch_size 250 > $B/test_gpu.log 2>&1; tail -3 $B/test_gpu.log
echo "test gpu $(( $(date +%s)-S ))s"
cp -r /tmp/gpu_dfn/csv /tmp/gpu_dfn/test_results_step*.json $B/ 2>/dev/null; cp /tmp/gpu_dfn/figures/test_* $B/ 2>/dev/null
tar czf $OUT/bundle.tgz -C /tmp bundle; ls -la $OUT
