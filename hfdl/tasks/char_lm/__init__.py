"""Character-level RNN / LSTM / GRU language models: stateful truncated BPTT, a 4-gram baseline, samples, Hub-ready transformers folders."""
