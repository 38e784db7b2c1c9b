from smenv.entry import main

main()
