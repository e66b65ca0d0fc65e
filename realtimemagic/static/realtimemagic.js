// placeholder: the client is written in client/ (issue 5)
