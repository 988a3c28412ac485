"""Time-series forecasting: RNN / LSTM / GRU (stacked, bidirectional, recurrent dropout), conv1d and MLP
forecasters against naive, seasonal naive and linear baselines on chronological splits."""
