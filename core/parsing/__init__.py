"""Format readers behind `core.documents.parse`: PDF (PDFium, OCR), Word, HTML, images, and layout clean-up."""
