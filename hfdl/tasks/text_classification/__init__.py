"""Sequence classification with RNN / LSTM / GRU (one-way or bidirectional): masked pooling over exactly the real tokens, recurrent dropout, a TF-IDF baseline, Hub-ready transformers folders."""
