1631209047761484608 33 24312 apache2 24318 read > fd=13(<4t>172.17.0.1:39012->172.17.0.3:80) size=8000
1631209047761490112 33 24312 apache2 24318 read < res=412 data=R0VUIC8gSFRUUC8xLjENCkhvc3Q6IHZpY3RpbQ0KDQo=
1631209047761512001 33 24312 apache2 24318 stat > 
1631209047761520000 33 24312 apache2 24318 stat < res=0 path=/var/www/html/index.php
1631209047761601337 33 24312 apache2 24318 openat > dirfd=-100(AT_FDCWD) name=/var/www/html/index.php flags=1(O_RDONLY) mode=0
1631209047761610000 33 24312 apache2 24318 openat < fd=14(<f>/var/www/html/index.php) dirfd=-100(AT_FDCWD) name=/var/www/html/index.php flags=1(O_RDONLY) mode=0 dev=803
1631209047761700000 33 24312 apache2 24318 writev > fd=13(<4t>172.17.0.1:39012->172.17.0.3:80) size=1208
1631209047761790000 33 24312 apache2 24318 writev < res=1208 data=SFRUUC8xLjEgMjAwIE9LDQo=
1631209047761800000 0 1 dumb-init 1 <NA> > next=24318(apache2)
1631209047761900000 33 24312 apache2 24320 poll > fds=13:p1 timeout=5000
