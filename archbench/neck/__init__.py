"""Neck compilation: specs -> nn.Module."""
