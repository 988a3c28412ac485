"""Similarity learning: triplet / siamese embedding networks on timm backbones, retrieval and verification metrics, FAISS search."""
