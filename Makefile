# Two commands set everything up on a fresh machine with Python >= 3.10 and pip:
#   make demo   installs the package into .venv and runs the main job on the embedded default corpus
#   make test   installs the package with its test extras and runs the default test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := data/default
NOISY_DATA := data/default-noisy
# the default corpus with 200 training speakers instead of 40 (its held-out splits are the default's): what the
# shipped usev-tiny trains on (make pretrained)
MANY_SPEAKERS_DATA := data/many-speakers
# the demo's corpus: the talker-mixture splits (what the demo, make pretrained and the quality benchmark use);
# speech in noise is its own folder (make data-noisy), so the demo does not wait for it
TALKER_SPLITS := train,validation,test,test_impaired,test_unseen_lang,test_switch,test_3mix,test_ood
OUT := outputs
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1

.PHONY: video-example benchmark-noisy benchmark-recognition data-noisy demo test test-slow style quality bench benchmark-quality pretrained install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# a stamp per extras set: reinstall only when setup.py changes
$(VENV)/.installed: setup.py | $(BIN)/python
	$(BIN)/python -m pip install -q -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import modeling_elegance, processing"
	touch $@

# the tests need the [video] extra too: the real-video tests run in CI
$(VENV)/.installed-dev: setup.py | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev,video]" 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import modeling_elegance, processing, pytest, av, dlib, face_recognition_models"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# the talker-mixture corpus, made once (the file exists once generation has finished)
$(DATA)/dataset_dict.json: | $(VENV)/.installed
	$(BIN)/elegance-data generate --preset default --splits $(TALKER_SPLITS) --out $(DATA)

$(MANY_SPEAKERS_DATA)/dataset_dict.json: | $(VENV)/.installed
	$(BIN)/elegance-data generate --preset many-speakers --splits train,validation,test,test_impaired \
		--out $(MANY_SPEAKERS_DATA)

demo: install $(DATA)/dataset_dict.json
	$(BIN)/elegance-data summary $(DATA) --contact_sheet $(OUT)/contact_sheet.png --split test
	$(BIN)/python -m training.demo --data $(DATA) --out $(OUT)

# the speech-in-noise splits of the default preset (about 1,450 examples: train_noisy, validation_noisy, test_noisy)
data-noisy: install
	@if [ -f $(NOISY_DATA)/dataset_dict.json ]; then echo "corpus already at $(NOISY_DATA)"; \
	else $(BIN)/elegance-data generate --preset default --splits train_noisy,validation_noisy,test_noisy --out $(NOISY_DATA); fi

test: install-dev quality
	$(BIN)/python -m pytest -q -m "not slow" tests

# ruff, configured in ruff.toml: `make style` rewrites, `make quality` only checks (and fails on any finding)
style: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

quality: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test-slow: install-dev
	$(BIN)/python -m pytest -q -m slow tests

bench: install-dev $(DATA)/dataset_dict.json
	$(BIN)/python benchmarks/bench_corpus_generation.py --out docs/benchmarks.md
	$(BIN)/python benchmarks/bench_backbones.py --out docs/benchmarks.md
	$(BIN)/python benchmarks/bench_guidance.py --out docs/benchmarks.md
	$(BIN)/python benchmarks/bench_avsr.py --out docs/benchmarks.md
	$(BIN)/python benchmarks/bench_video.py --out docs/benchmarks.md
	$(BIN)/python benchmarks/bench_data_parallel.py --data $(DATA) --out docs/benchmarks.md

# elegance-extract on a two-talker video built from the real GRID clips of ../shared/data/grid: the README's example
# (outputs/two_talkers/) and its contact sheets (docs/mouths-face-*.png)
video-example: install-dev
	$(BIN)/python -c "import sys; sys.path.insert(0, 'tests'); from video_fixtures import two_talker_video; \
	two_talker_video('$(OUT)/two_talkers.mp4')"
	$(BIN)/elegance-extract $(OUT)/two_talkers.mp4 --model pretrained/usev-tiny --out $(OUT)/two_talkers
	cp $(OUT)/two_talkers/face_0_mouths.png docs/mouths-face-0.png
	cp $(OUT)/two_talkers/face_1_mouths.png docs/mouths-face-1.png

# every guidance strategy, 3 seeds, a fixed step budget (about 2 hours on 2 cores; resumes where it stopped)
benchmark-quality: install-dev $(DATA)/dataset_dict.json
	cd benchmarks && ../$(BIN)/python bench_quality.py --out ../docs/results.md --pslm "$$(../$(BIN)/elegance-whisper-offline)"

# re-creates the shipped models of pretrained/ (see pretrained/README.md for the commands, commits and measured
# times): the lip reader, then usev-tiny and av-mamba-tiny, one after the other, each alone on both cores on the
# many-speakers corpus (about 112 and 97 minutes), each evaluated and exported with its card; resumes where it stopped. The recipe itself (learning
# rate 2e-3 with warm-up and cosine decay, 30% of the lips impaired) is elegance-train's default. Two OpenMP threads
# beside another job wait on each other (3x slower a step), hence one after the other.
RUN_FLAGS := --lip_encoder pretrained/lip-reader --eval_strategy steps --eval_steps 2000 --save_steps 1000 \
	--disable_tqdm true --resume_from_checkpoint last --embedding_cache_dir $(OUT)/cache
USEV_TINY := --backbone usev-tiny --config_overrides encoder_channels=256 --max_steps 50000 --logging_steps 500 --seed 0
AV_MAMBA_TINY := --backbone av-mamba-tiny --config_overrides encoder_channels=256 --max_steps 17000 --logging_steps 500 --seed 0
pretrained: install $(DATA)/dataset_dict.json $(MANY_SPEAKERS_DATA)/dataset_dict.json
	$(BIN)/elegance-pretrain-lips --data $(DATA) --output_dir $(OUT)/lips --disable_tqdm true --resume_from_checkpoint last
	rm -rf pretrained/lip-reader && cp -r $(OUT)/lips/lip-reader pretrained/lip-reader
	OMP_NUM_THREADS=2 $(BIN)/elegance-train $(USEV_TINY) --data $(MANY_SPEAKERS_DATA) --output_dir $(OUT)/runs/pretrained-usev-tiny $(RUN_FLAGS)
	OMP_NUM_THREADS=2 $(BIN)/elegance-train $(AV_MAMBA_TINY) --data $(MANY_SPEAKERS_DATA) \
		--output_dir $(OUT)/runs/pretrained-av-mamba-tiny $(RUN_FLAGS)
	for name in usev-tiny av-mamba-tiny; do \
		$(BIN)/elegance-evaluate --model $(OUT)/runs/pretrained-$$name/guidance-free --data $(DATA) --splits test,test_impaired \
			--no_perceptual --asr none --out $(OUT)/runs/pretrained-$$name-evaluation.json && \
		$(BIN)/elegance-export $(OUT)/runs/pretrained-$$name pretrained/$$name --evaluation $(OUT)/runs/pretrained-$$name-evaluation.json \
		|| exit 1; \
	done

clean:
	rm -rf $(VENV) $(OUT) data *.egg-info

# AVUR-LLM's ablation in noise: fine-tuned audio-only Whisper, SMA, + AMF (3 seeds), + VUR, and extraction then
# recognition on two-talker mixtures; resumes where it stopped
benchmark-recognition: data-noisy $(DATA)/dataset_dict.json
	cd benchmarks && ../$(BIN)/python bench_recognition.py --out ../docs/results.md

# CMKT in its own setting: audio-only enhancement in noise, unguided against CMKT, 3 seeds, and the shift sweep
benchmark-noisy: data-noisy
	cd benchmarks && ../$(BIN)/python bench_noisy.py --out ../docs/results.md
