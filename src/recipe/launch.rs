//! A recipe's `launch.sh` (one node with N GPUs, or several nodes) and its README.

use std::path::Path;

use super::plan::Plan;
use super::yaml::Entry;
use super::{DATA_DIR, OUTPUT_DIR};
use super::{RecipeSummary, RecipeTarget};
use crate::error::{Error, Result};

pub const SCRIPT: &str = "launch.sh";

/// The launcher: torchrun with one process per GPU, `NNODES`/`NODE_RANK`/`MASTER_ADDR` for
/// several nodes; arguments after the script go to the trainer.
pub fn script(target: RecipeTarget, world_size: usize) -> String {
    let run = match target {
        RecipeTarget::Trl => format!(
            "SFT=$(python -c 'import trl.scripts.sft as m; print(m.__file__)')\n\
             exec torchrun --nproc_per_node \"$NPROC\" \"${{NODES[@]}}\" \"$SFT\" --config {} \"$@\"\n",
            target.config_file()
        ),
        RecipeTarget::Axolotl => {
            format!(
                "exec axolotl train {} \"$@\" --launcher torchrun -- --nproc_per_node \"$NPROC\" \"${{NODES[@]}}\"\n",
                target.config_file()
            )
        }
    };
    format!(
        r#"#!/usr/bin/env bash
# Trains this recipe on {world_size} processes (GPUs), the world size its batch was split for.
#   ./launch.sh                                      one node with {world_size} GPUs
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 ./launch.sh   on node 0; NODE_RANK=1 on node 1, ...
# Arguments after the script go to the trainer.
set -euo pipefail
cd "$(dirname "$0")"
WORLD_SIZE={world_size}
NNODES="${{NNODES:-1}}"
if (( WORLD_SIZE % NNODES != 0 )); then
  echo "launch.sh: $WORLD_SIZE processes do not split over $NNODES nodes; export the recipe again with another --world-size" >&2
  exit 2
fi
NPROC=$(( WORLD_SIZE / NNODES ))
NODES=(--nnodes "$NNODES")
if (( NNODES > 1 )); then
  NODES+=(--node_rank "${{NODE_RANK:?set NODE_RANK (0 to NNODES-1) on each node}}"
          --master_addr "${{MASTER_ADDR:?set MASTER_ADDR to node 0 address}}" --master_port "${{MASTER_PORT:-29500}}")
fi
{run}"#
    )
}

/// Makes the launcher executable (on Unix; elsewhere it runs with `bash launch.sh`).
pub fn make_executable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The wgtune commands that take the target's output: an adapter on the base model, or the
/// fine-tuned model itself.
fn bring_back(plan: &Plan) -> String {
    let model = plan.run.model.display();
    let weights =
        if plan.run.method.lora().is_some() { format!("--model {model} --trained {OUTPUT_DIR}") } else { format!("--model {OUTPUT_DIR}") };
    format!(
        "Each checkpoint, and the end result, is a run to wgtune:\n\n```sh\n\
         wgtune eval {weights} --data {DATA_DIR}/validation.jsonl\n\
         wgtune generate {weights} --prompt \"...\"\n\
         wgtune export {weights} --gguf model.gguf   # or --merged, --ollama\n```"
    )
}

pub fn readme(plan: &Plan, target: RecipeTarget, entries: &[Entry], summary: &RecipeSummary) -> String {
    let run = plan.run;
    let install = match target {
        RecipeTarget::Trl => "pip install torch transformers peft trl accelerate datasets",
        RecipeTarget::Axolotl => "pip install axolotl  # see docs.axolotl.ai for the CUDA build that matches your cluster",
    };
    let trained =
        if run.method.lora().is_some() { "a PEFT adapter (`adapter_config.json`, `adapter_model.safetensors`)" } else { "a model folder" };
    let mut out = format!(
        "# {name} recipe from wgtune\n\n\
         The run of `{model}` on `{data}`, to train on {world} processes (GPUs) with {name}: the same records and \
         validation split ({train} training and {validation} validation records in `{DATA_DIR}/`, written as {form}), \
         the same settings where {name} has them (the table below), and a batch of {micro} sequences per process × \
         {accum} accumulation steps × {world} processes = wgtune's {global} sequences per optimizer step.\n\n",
        name = target.name(),
        model = run.model.display(),
        data = run.data.train_file.display(),
        world = plan.world_size,
        train = summary.train_records,
        validation = summary.validation_records,
        form = summary.form.name(),
        micro = summary.micro_batch,
        accum = summary.accumulation,
        global = run.batch_size * run.grad_accumulation,
    );
    if let Some(note) = &plan.base.note {
        out.push_str(&format!("**Base model:** `{}`: {note}.\n\n", plan.base.name));
    }
    out.push_str(&format!(
        "## Install\n\n```sh\n{install}\n```\n\n\
         ## Launch\n\n```sh\n./launch.sh                                          # one node, {world} GPUs\n\
         NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 ./launch.sh     # on each of several nodes, NODE_RANK 0, 1, ...\n```\n\n\
         Arguments after `launch.sh` go to the trainer. The batch was split for exactly {world} processes: on another \
         number, export the recipe again with `--world-size`.\n\n\
         ## Bring it back\n\n\
         Checkpoints appear in `{OUTPUT_DIR}/checkpoint-N/`, and {trained} in `{OUTPUT_DIR}/` at the end. {back}\n\n\
         The app's Runs tab lists this folder with its loss curve (from `trainer_state.json`) beside the laptop runs.\n\n",
        world = plan.world_size,
        back = bring_back(plan),
    ));
    out.push_str(&format!("## Settings\n\n| `{}` | value |\n|---|---|\n", target.config_file()));
    for entry in entries {
        out.push_str(&format!("| `{}` | `{}` |\n", entry.key, entry.value));
    }
    out.push_str("\n## Not carried over\n\n| wgtune setting | in this recipe |\n|---|---|\n");
    for (setting, instead) in plan.unsupported() {
        out.push_str(&format!("| `{setting}` | {instead} |\n"));
    }
    out
}
