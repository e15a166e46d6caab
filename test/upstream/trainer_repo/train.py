# A stand-in for upstream's train.py, for tests only: it behaves the way the spec (§1.1, §1.5,
# §1.12) says the real trainer does where cfpipe depends on it, and nothing more.
#   * reads `configs/default_config.yaml` from its working directory, merged under --config_path;
#   * loads `generator_ckpt` when the config sets one, and wan_models/Wan2.1-T2V-1.3B/ (cwd-relative);
#   * loops forever, saving <logdir>/checkpoint_model_{step:06d}/model.pt every log_iters steps,
#     written in place and slowly (held open between writes), as torch.save does;
#   * starts a child process, as torchrun starts ranks, so stopping must end the whole tree.
import argparse, hashlib, json, os, subprocess, sys, time
import yaml

parser = argparse.ArgumentParser()
parser.add_argument("--config_path", required=True)
parser.add_argument("--logdir", required=True)
parser.add_argument("--disable-wandb", action="store_true")
args = parser.parse_args()

config = yaml.safe_load(open("configs/default_config.yaml")) or {}
config.update(yaml.safe_load(open(args.config_path)) or {})
wan = open("wan_models/Wan2.1-T2V-1.3B/config.json").read()

init_digest = None
if config.get("generator_ckpt"):
    with open(config["generator_ckpt"], "rb") as f:
        init_digest = hashlib.sha256(f.read()).hexdigest()

rank = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
pids = os.environ.get("TRAINER_PIDS_FILE")
if pids:
    with open(pids, "a") as f:
        f.write(f"{os.getpid()} {rank.pid}\n")

os.makedirs(args.logdir, exist_ok=True)
step = 0
while True:
    time.sleep(float(config.get("step_seconds", 0.02)))
    step += 1
    print(f"step {step}", flush=True)
    if step % int(config["log_iters"]) == 0:
        folder = os.path.join(args.logdir, f"checkpoint_model_{step:06d}")
        os.makedirs(folder, exist_ok=True)
        body = json.dumps({"step": step, "init_digest": init_digest, "data_path": config.get("data_path"),
                           "config_name": os.path.splitext(os.path.basename(args.config_path))[0], "wan": wan})
        with open(os.path.join(folder, "model.pt"), "w") as f:
            f.write(body)
            f.flush()
            # Size unchanged but the file still open: only the last line makes it complete.
            time.sleep(float(config.get("hold_open_seconds", 0.8)))
            f.write("\nEND\n")
