"""RAGTune Playground as a Python library: no Streamlit in here."""
