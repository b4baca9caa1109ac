from cmav_data.cli import main

main(prog_name="cmav-data")
