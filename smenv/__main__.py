from smenv.cli import app

app()
