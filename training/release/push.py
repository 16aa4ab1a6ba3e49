"""`elegance-push SOURCE REPO_ID`: release a guidance-free model on the Hugging Face Hub in one commit.

SOURCE is either a training run (the output_dir of ``elegance-train``, or one of its ``checkpoint-N`` folders),
which is first exported with its model card into ``--out``, or a folder that ``elegance-export`` wrote. Before
anything is sent the folder is verified, and a folder that fails is never uploaded:

- the model loads with ``from_pretrained`` with no missing or unexpected keys and holds no training-only weight
  (LLM, PSLM, adapters, cross-attention);
- the folder's own code (``trust_remote_code=True``) gives the same outputs as this package's classes;
- the model card's metadata parses (YAML header, ``model-index`` results).

The upload goes to ``HF_ENDPOINT`` (default: the public Hub), or ``--endpoint``, as one commit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .export import check_same_outputs, export_guidance_free, find_checkpoint, load_released_model

RELEASE_FILES = ("config.json", "model.safetensors", "processor_config.json", "README.md")


def is_training_run(folder: str) -> bool:
    """True for an elegance-train output_dir or checkpoint (what ``export_guidance_free`` accepts)."""
    try:
        find_checkpoint(folder)
    except FileNotFoundError:
        return False
    return True


def verify_release(folder: str) -> None:
    """Raise ValueError, naming the problem, unless ``folder`` is a complete guidance-free release."""
    from huggingface_hub import ModelCard
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} does not exist; pass a training run or a folder written by elegance-export")
    missing = [name for name in RELEASE_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise ValueError(
            f"{folder} is not a release folder: it lacks {', '.join(missing)} (write one with elegance-export)"
        )
    with open(os.path.join(folder, "config.json")) as stream:
        auto_map = json.load(stream).get("auto_map", {})
    with open(os.path.join(folder, "processor_config.json")) as stream:
        processor_class = json.load(stream).get("auto_map", {}).get("AutoProcessor")
    if "AutoModel" not in auto_map or processor_class is None:
        raise ValueError(
            f"{folder} does not name its own model and processor code (auto_map); re-export it with elegance-export"
        )
    code_files = {entry.split(".")[0] + ".py" for entry in [*auto_map.values(), processor_class]}
    absent = sorted(name for name in code_files if not os.path.isfile(os.path.join(folder, name)))
    if absent:
        raise ValueError(f"{folder} lacks the model code its config names ({', '.join(absent)}); re-export it")

    model = load_released_model(folder)
    # the folder's own code, as trust_remote_code=True loads it where this package is absent (here the package's
    # registered classes would take precedence over it)
    remote = get_class_from_dynamic_module(auto_map["AutoModel"], folder).from_pretrained(folder)
    check_same_outputs(
        model, remote, f"{folder}: the output of its own code (trust_remote_code) and of this package's classes"
    )
    get_class_from_dynamic_module(processor_class, folder).from_pretrained(folder)

    card = ModelCard.load(os.path.join(folder, "README.md"))
    if card.data.library_name != "transformers" or card.data.pipeline_tag is None:
        raise ValueError(f"{folder}/README.md lacks its library_name or pipeline_tag metadata; re-export it")
    for result in card.data.eval_results or []:
        if not isinstance(result.metric_value, (int, float)):
            raise ValueError(
                f"{folder}/README.md: model-index value {result.metric_value!r} of {result.metric_type} is not a number"
            )


def prepare_release(
    source: str, out_dir: str | None = None, *, evaluation: dict | None = None, repo_id: str | None = None
) -> str:
    """The release folder of ``source``, verified: a training run is exported into ``out_dir`` first."""
    if is_training_run(source):
        if out_dir is None:
            raise ValueError(f"{source} is a training run; pass --out DIR for its guidance-free export")
        source = export_guidance_free(source, out_dir, evaluation=evaluation, repo_id=repo_id)
    elif evaluation is not None:
        raise ValueError(f"{source} is already exported; pass --evaluation with a training run, or re-export it")
    verify_release(source)
    return source


def push_release(
    folder: str,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
):
    """Verify ``folder`` and upload it to ``repo_id`` in one commit; returns huggingface_hub's ``CommitInfo``."""
    try:
        verify_release(folder)
    except ValueError as error:
        raise ValueError(f"refusing to upload {folder}: {error}") from error
    return upload_release(
        folder,
        repo_id,
        private=private,
        revision=revision,
        commit_message=commit_message,
        token=token,
        endpoint=endpoint,
    )


def upload_release(
    folder: str, repo_id: str, *, private=False, revision=None, commit_message=None, token=None, endpoint=None
):
    """Upload a folder that ``verify_release`` accepted, in one commit (create the repository and branch if needed)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision not in (None, "main"):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        revision=revision,
        commit_message=commit_message or f"Upload guidance-free {os.path.basename(os.path.normpath(folder))}",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="elegance-push", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "source", help="a training run (output_dir or checkpoint-N) or a folder written by elegance-export"
    )
    parser.add_argument("repo_id", help="the Hub repository, ORG/NAME")
    parser.add_argument("--out", help="where a training run's export goes (default: SOURCE/release)")
    parser.add_argument(
        "--evaluation", help="JSON of elegance-evaluate for the card's model-index (with a training run)"
    )
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to commit to (created if missing; default main)")
    parser.add_argument("--commit_message")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT, else the public Hub)")
    parser.add_argument("--dry_run", action="store_true", help="export and verify only; upload nothing")
    args = parser.parse_args(argv)
    evaluation = None
    if args.evaluation:
        with open(args.evaluation) as stream:
            evaluation = json.load(stream)
    out = args.out or (os.path.join(args.source, "release") if is_training_run(args.source) else None)
    folder = prepare_release(args.source, out, evaluation=evaluation, repo_id=args.repo_id)
    print(f"verified release folder {folder}")
    if args.dry_run:
        return 0
    commit = upload_release(
        folder,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        token=args.token,
        endpoint=args.endpoint,
    )
    print(f"pushed {folder} to {args.repo_id} in one commit: {commit.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
