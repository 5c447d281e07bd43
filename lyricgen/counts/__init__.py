"""The n-gram counts beside the LSTM and the mixtures that weigh them."""
