"""The content repository: uploads, downloads, thumbnails and URL previews."""
